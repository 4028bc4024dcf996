"""Fine-tuning from a CTC checkpoint whose letter order differs from the data's dictionary."""

from __future__ import annotations

import pytest
import torch

from speechssl.data.tokenizer import LetterTokenizer
from speechssl.interop.checkpoint import save_speechssl_checkpoint
from speechssl.models import Wav2Vec2ForCTC, get_preset
from speechssl.training.config import DataSection, FinetuneConfig, ModelSection
from speechssl.training.finetune import build_ctc_model, ctc_head_rows

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]


def test_head_rows_follow_the_symbols():
    source = LetterTokenizer([*SPECIALS, "E", "T", "A", "'"])
    target = LetterTokenizer([*SPECIALS, "A", "E", "T"])  # other order, apostrophe dropped
    rows = ctc_head_rows(source, target)
    assert [source.symbols[r] for r in rows] == target.symbols


def test_fairseq_blank_maps_to_native_blank():
    # fairseq's layout: <s> is the blank and <pad> an ordinary special; ours: <pad> is the blank.
    fairseq = LetterTokenizer(["<s>", "<pad>", "</s>", "<unk>", "|", "E", "T"], blank="<s>")
    native = LetterTokenizer([*SPECIALS, "T", "E"])
    rows = ctc_head_rows(fairseq, native)
    assert rows[native.blank_index] == fairseq.blank_index
    assert rows[native.symbols.index("<s>")] == fairseq.unk_index  # the source's <s> is its blank, not a bos
    assert [fairseq.symbols[r] for r in rows[5:]] == ["T", "E"]


def test_letter_missing_from_the_checkpoint_is_named():
    source = LetterTokenizer([*SPECIALS, "E", "T"])
    with pytest.raises(ValueError, match=r"lacks \['Ω'\]"):
        ctc_head_rows(source, LetterTokenizer([*SPECIALS, "E", "Ω", "T"]))


def test_reordered_dictionary_gives_the_same_scores(tmp_path):
    torch.manual_seed(0)
    source = LetterTokenizer.default_english()
    trained = Wav2Vec2ForCTC(get_preset("tiny"), len(source)).eval()
    with torch.no_grad():  # a trained-looking head: distinct bias per symbol
        trained.head.bias.copy_(torch.linspace(-2, 2, len(source)))
    checkpoint = save_speechssl_checkpoint(tmp_path / "ctc.pt", trained, tokenizer=source)

    letters = source.symbols[5:]
    shuffled = [letters[i] for i in torch.randperm(len(letters), generator=torch.Generator().manual_seed(3))]
    (tmp_path / "dict.ltr.txt").write_text("".join(f"{s} {100 - i}\n" for i, s in enumerate(shuffled)))
    target = LetterTokenizer([*SPECIALS, *shuffled])
    cfg = FinetuneConfig(data=DataSection(dir=str(tmp_path), labels="ltr"), model=ModelSection(preset="tiny"),
                         init=str(checkpoint))
    model = build_ctc_model(cfg, target).eval()

    waveform = torch.randn(1, 8000)
    with torch.no_grad():
        expected = trained(waveform).logits[0]  # (T, V_source)
        got = model(waveform).logits[0]  # (T, V_target)
    for j, symbol in enumerate(target.symbols):
        i = source.blank_index if symbol == target.blank else source.symbols.index(symbol)
        torch.testing.assert_close(got[:, j], expected[:, i], rtol=0, atol=1e-6, msg=symbol)
