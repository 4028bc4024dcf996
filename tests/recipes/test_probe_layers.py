"""egs/common/probe_layers.py: a linear CTC probe reads letters from states that hold them, not from noise; the
manifest reader names a transcript file that does not match its manifest."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from speechssl.data.tokenizer import LetterTokenizer

REPO = Path(__file__).resolve().parents[2]


def _probe_module():
    spec = importlib.util.spec_from_file_location("probe_layers", REPO / "egs/common/probe_layers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["probe_layers"] = module
    spec.loader.exec_module(module)
    return module


def _utterances(tokenizer: LetterTokenizer, texts: list[str], *, readable: bool, seed: int):
    """Per text: (states (T, D), targets, reference). Readable states carry each letter's one-hot for 2 frames,
    then a gap frame; unreadable ones are noise of the same shape."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for text in texts:
        ids = tokenizer.encode_letters(text)
        frames = []
        for i in ids:
            letter = torch.zeros(len(tokenizer))
            letter[i] = 1.0
            frames += [letter, letter, torch.zeros(len(tokenizer))]
        states = torch.stack(frames) + 0.05 * torch.randn(len(frames), len(tokenizer), generator=generator)
        if not readable:
            states = torch.randn(states.shape, generator=generator)
        out.append((states, torch.tensor(ids), tokenizer.decode(ids)))
    return out


@pytest.mark.parametrize(("readable", "bound"), [(True, (0.0, 5.0)), (False, (60.0, 200.0))])
def test_probe_reads_letters_only_where_the_states_hold_them(readable, bound):
    probe = _probe_module()
    tokenizer = LetterTokenizer.default_english()
    train = _utterances(tokenizer, ["A B C", "C A B", "B A", "A C C B", "C B A A"] * 4, readable=readable, seed=0)
    valid = _utterances(tokenizer, ["B C A", "A A B", "C B"], readable=readable, seed=1)
    torch.manual_seed(0)
    _, cer = probe.probe_cer([s for s, _, _ in train], [t for _, t, _ in train], [s for s, _, _ in valid],
                             [r for _, _, r in valid], tokenizer, steps=300, lr=3e-2)
    assert bound[0] <= cer <= bound[1]


def test_a_transcript_file_of_another_length_is_named(tmp_path):
    probe = _probe_module()
    (tmp_path / "valid.tsv").write_text(f"{tmp_path}\na.flac\t16000\nb.flac\t16000\n")
    (tmp_path / "valid.ltr").write_text("A |\n")
    with pytest.raises(ValueError, match=r"valid.ltr: 1 lines but the manifest has 2"):
        probe.read_split(tmp_path, "valid")
