"""A picture of a CTC decoding: emissions over time with the aligned characters and word spans."""

from __future__ import annotations

from pathlib import Path

import torch

from speechssl.decoding.ctc import FRAME_SHIFT_SECONDS, Hypothesis, Tokenizer


def plot_alignment(emissions: torch.Tensor, hypothesis: Hypothesis, tokenizer: Tokenizer, path: str | Path,
                   *, frame_shift: float = FRAME_SHIFT_SECONDS, max_seconds: float | None = 60.0,
                   title: str | None = None) -> Path:
    """Write a PNG: top, per-frame probabilities ``(V, T)`` as an image with the aligned characters; bottom,
    the probability of the chosen token per frame with word spans shaded and labelled.

    Args:
        emissions: ``(T, V)`` log-probs.
        hypothesis: the decoding of these emissions (its token spans and words are drawn).
        max_seconds: draw only the first ``max_seconds`` (None: all); long plots get unreadable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if emissions.dim() != 2:
        raise ValueError(f"emissions must be (T, V), got shape {tuple(emissions.shape)}")
    frames = emissions.shape[0]
    if max_seconds is not None:
        frames = min(frames, int(max_seconds / frame_shift))
    probs = emissions[:frames].detach().float().exp().cpu()  # (T, V)
    seconds = frames * frame_shift
    width = min(40.0, max(8.0, seconds * 1.2))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.imshow(probs.T.numpy(), aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
               extent=(0, seconds, -0.5, probs.shape[1] - 0.5))
    top.set_yticks(range(len(tokenizer.symbols)))
    top.set_yticklabels(tokenizer.symbols, fontsize=6)
    top.set_ylabel("token")
    for span in hypothesis.token_spans:
        if span.start_frame >= frames:
            break
        centre = (span.start_frame + span.end_frame) / 2 * frame_shift
        top.text(centre, span.token, tokenizer.symbols[span.token], color="red", fontsize=7, ha="center",
                 va="center", fontweight="bold")
    chosen = probs.max(dim=-1).values  # (T,)
    times = [(t + 0.5) * frame_shift for t in range(frames)]
    bottom.plot(times, chosen.numpy(), linewidth=0.8)
    for word in hypothesis.words:
        if word.start >= seconds:
            break
        bottom.axvspan(word.start, min(word.end, seconds), alpha=0.2, color="orange")
        bottom.text((word.start + min(word.end, seconds)) / 2, 1.02, word.word, fontsize=7, ha="center",
                    va="bottom")
    bottom.set_ylim(0, 1.15)
    bottom.set_ylabel("p(best)")
    bottom.set_xlabel("time (s)")
    top.set_title(title or hypothesis.text[:150])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
