#!/usr/bin/env python
"""Linear CTC probes: how well can letters be read from each layer of a (pretrained) encoder?

For every hidden state of the context network (its input, then each Transformer layer's output) a linear CTC
head is trained on frozen features of one labelled split (full batch, Adam) and scored by greedy CER on another.
A probe measures the representation itself, without fine-tuning's run-to-run variation.

    python egs/common/probe_layers.py CHECKPOINT DATA_DIR [--train train_10min] [--valid valid] [--steps 1500]
    python egs/common/probe_layers.py random DATA_DIR --preset small     # an untrained model, for comparison
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jiwer
import torch
import torch.nn.functional as F

from speechssl.data import manifest
from speechssl.data.audio import load_audio
from speechssl.data.tokenizer import LetterTokenizer


def read_split(data_dir: Path, split: str) -> list[tuple[Path, str]]:
    """(audio path, letter transcript) pairs of a prepared split (SPLIT.tsv + SPLIT.ltr)."""
    labeled = manifest.read_split(data_dir, split)
    if labeled.letters is None:
        raise ValueError(f"{data_dir}: no {split}.ltr beside {split}.tsv")
    return [(labeled.manifest.audio_path(i), text) for i, text in enumerate(labeled.letters)]


@torch.no_grad()
def layer_states(encoder: torch.nn.Module, pairs: list[tuple[Path, str]]) -> list[list[torch.Tensor]]:
    """Per utterance, every hidden state of the context network: [input, layer 1, ..., layer N], each (T, D)."""
    states = []
    for path, _ in pairs:
        # the package's loader: resampled to 16 kHz, normalised as the model was trained (LARGE models)
        x = torch.from_numpy(load_audio(path, normalize=encoder.config.normalize))[None]  # (L,) -> (1, L)
        out = encoder(x, None, apply_mask=False, return_hidden_states=True)
        states.append([h[0].float() for h in out.hidden_states])
    return states


def probe_cer(train: list[torch.Tensor], train_targets: list[torch.Tensor], valid: list[torch.Tensor],
              valid_refs: list[str], tokenizer: LetterTokenizer, *, steps: int, lr: float) -> tuple[float, float]:
    """Train a linear CTC head on `train` states; (its last training loss per utterance, greedy valid CER %)."""
    head = torch.nn.Linear(train[0].shape[-1], len(tokenizer))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    x = torch.nn.utils.rnn.pad_sequence(train, batch_first=True)  # (B, T, D)
    x_lengths = torch.tensor([len(t) for t in train])
    targets = torch.cat(train_targets)
    target_lengths = torch.tensor([len(t) for t in train_targets])
    for _ in range(steps):
        log_probs = F.log_softmax(head(x), dim=-1).transpose(0, 1)  # (T, B, V)
        loss = F.ctc_loss(log_probs, targets, x_lengths, target_lengths, blank=tokenizer.blank_index,
                          reduction="sum", zero_infinity=True) / len(train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        hyps = [tokenizer.decode(tokenizer.ctc_collapse(head(h).argmax(-1).tolist())) for h in valid]
    return loss.item(), 100.0 * jiwer.cer(valid_refs, [h if h.strip() else "-" for h in hyps])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a speechssl/HF/fairseq checkpoint, or 'random' for a fresh --preset")
    parser.add_argument("data_dir", type=Path, help="prepared data: SPLIT.tsv, SPLIT.ltr, dict.ltr.txt")
    parser.add_argument("--train", default="train_10min", help="split the probes train on (default train_10min)")
    parser.add_argument("--valid", default="valid", help="split they are scored on (default valid)")
    parser.add_argument("--preset", default="small", help="with 'random': the model preset (default small)")
    parser.add_argument("--steps", type=int, default=1500, help="full-batch Adam steps per probe (default 1500)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.checkpoint == "random":
        from speechssl.models import Wav2Vec2ForPreTraining, get_preset

        encoder = Wav2Vec2ForPreTraining(get_preset(args.preset)).encoder
    else:
        from speechssl.interop import load_model

        encoder = load_model(args.checkpoint).model.encoder
    encoder.eval()
    tokenizer = LetterTokenizer.from_fairseq_dict(args.data_dir / "dict.ltr.txt")
    train_pairs, valid_pairs = read_split(args.data_dir, args.train), read_split(args.data_dir, args.valid)
    train_states, valid_states = layer_states(encoder, train_pairs), layer_states(encoder, valid_pairs)
    train_targets = [torch.tensor(tokenizer.encode_letters(text)) for _, text in train_pairs]
    valid_refs = [tokenizer.decode(tokenizer.encode_letters(text)) for _, text in valid_pairs]
    print(f"{args.checkpoint}: linear CTC probes trained on {args.train} ({len(train_pairs)} utterances), "
          f"greedy CER on {args.valid} ({len(valid_pairs)})", flush=True)
    for layer in range(len(train_states[0])):
        loss, cer = probe_cer([s[layer] for s in train_states], train_targets, [s[layer] for s in valid_states],
                              valid_refs, tokenizer, steps=args.steps, lr=args.lr)
        name = "input" if layer == 0 else f"layer {layer}"
        print(f"  {name:8s}  train CTC loss {loss:6.1f}   valid CER {cer:5.1f} %", flush=True)


if __name__ == "__main__":
    main()
