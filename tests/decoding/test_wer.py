import json

import jiwer
import pytest

from speechssl.decoding.report import write_report
from speechssl.decoding.wer import score

REFS = ["THE CAT SAT", "A DOG", "HELLO WORLD AGAIN", "ONE"]
HYPS = ["THE HAT SAT DOWN", "A DOG", "HELLO AGAIN", ""]


def test_corpus_rates_are_jiwers_and_utterances_add_up():
    result = score(["a", "b", "c", "d"], REFS, HYPS)
    assert result.wer == pytest.approx(jiwer.wer(REFS, HYPS))
    assert result.cer == pytest.approx(jiwer.cer(REFS, HYPS))
    assert sum(u.words.errors for u in result.utterances) == result.words.errors == 4
    assert sum(u.words.reference_length for u in result.utterances) == result.words.reference_length == 9
    assert sum(u.chars.errors for u in result.utterances) == result.chars.errors
    first = result.utterances[0]
    assert (first.words.substitutions, first.words.insertions) == (1, 1)
    assert first.alignment == "THE (CAT->HAT) SAT (*->DOWN)"
    assert result.utterances[2].alignment == "HELLO (WORLD->*) AGAIN"


def test_report_files_agree_with_jiwer_on_the_written_hypotheses(tmp_path):
    result = score(["u1", "u2", "u3", "u4"], REFS, HYPS)
    files = write_report(result, tmp_path, subset="test", settings={"decoder": "viterbi"})
    rows = [line.split("\t") for line in files.utterances.read_text().splitlines()[1:]]
    written_refs = [r[1] for r in rows]
    written_hyps = [r[2] for r in rows]
    summary = json.loads(files.summary.read_text())
    assert summary["wer"] == pytest.approx(round(100 * jiwer.wer(written_refs, written_hyps), 2))
    assert summary["wer_fraction"] == pytest.approx(jiwer.wer(written_refs, written_hyps))
    recogs = files.recogs.read_text().splitlines()
    assert recogs[0] == "u1:\tref=THE CAT SAT" and recogs[1] == "u1:\thyp=THE HAT SAT DOWN"
    assert files.errs.read_text().startswith("%WER 44.44 [ 4 / 9, 1 ins, 2 del, 1 sub ]")
    assert files.wer_summary.read_text().splitlines()[1] == "decode\t44.44"


def test_score_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one entry per utterance"):
        score(["a"], ["A B"], [])
