"""PNG curves of a run from its log.jsonl: losses, accuracy, perplexities, temperature, lr, WER."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from speechssl.training.logging import read_log

# (file stem, title, [(split, key), ...], log-scale y)
PANELS = [
    ("loss", "loss (bits per sample)", [("train", "loss"), ("valid", "loss"), ("train", "contrastive_loss"),
                                        ("valid", "contrastive_loss")], False),
    ("accuracy", "contrastive accuracy", [("train", "accuracy"), ("valid", "accuracy")], False),
    ("perplexity", "codebook perplexity", [("train", "code_perplexity"), ("train", "prob_perplexity"),
                                           ("valid", "code_perplexity"), ("valid", "prob_perplexity")], False),
    ("diversity", "diversity term", [("train", "diversity"), ("valid", "diversity")], False),
    ("temperature", "Gumbel temperature", [("train", "temperature")], False),
    ("lr", "learning rate", [("train", "lr")], False),
    ("grad_norm", "gradient norm", [("train", "grad_norm")], True),
    ("wer", "validation WER (%)", [("valid", "wer"), ("valid", "cer")], False),
]


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write one PNG per panel that has data, plus `curves.png` with all of them; returns the paths."""
    records = read_log(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for r in records:
        for key, value in r.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                xs, ys = series.setdefault((r["split"], key), ([], []))
                xs.append(r["update"])
                ys.append(value)
    panels = [(stem, title, [(s, k) for s, k in keys if (s, k) in series], log)
              for stem, title, keys, log in PANELS]
    panels = [p for p in panels if p[2]]
    written: list[Path] = []
    if not panels:
        raise ValueError(f"no plottable values in {Path(run_dir) / 'log.jsonl'}")
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig_all, axes = plt.subplots(rows, cols, figsize=(11, 3.2 * rows), squeeze=False)
    for idx, (stem, title, keys, log) in enumerate(panels):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for target in (ax, axes[idx // cols][idx % cols]):
            for split, key in keys:
                xs, ys = series[(split, key)]
                target.plot(xs, ys, label=f"{split} {key}", marker="o" if split == "valid" else None,
                            markersize=3)
            target.set_title(title)
            target.set_xlabel("update")
            if log:
                target.set_yscale("log")
            target.grid(alpha=0.3)
            target.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for idx in range(len(panels), rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    fig_all.tight_layout()
    path = out / "curves.png"
    fig_all.savefig(path, dpi=90)
    plt.close(fig_all)
    written.append(path)
    return written
