"""The onnxruntime path with torch blocked from import: the API and `speechssl transcribe --backend onnx` give
the torch model's transcripts and word times (greedy and KenLM), chunked long audio included."""

import json
import subprocess
import sys

import pytest

from speechssl.api import load
from speechssl.cli.main import main

# the onnx extra (`make install` installs it): without it these tests skip, counted
for _module in ("onnx", "onnxruntime", "onnxscript"):
    pytest.importorskip(_module, reason="the onnx extra is not installed: pip install -e '.[onnx]'")

# Runs in a fresh interpreter where `import torch` (and any torch.*) raises ImportError.
TORCH_BLOCKED = r'''
import json, sys
sys.modules["torch"] = None
import speechssl
from speechssl.cli.main import main

folder, *audio = sys.argv[1:]
greedy = speechssl.load(folder, decoder="viterbi").transcribe(audio, chunk_seconds=2, overlap_seconds=0.5)
with_lm = speechssl.load(folder).transcribe(audio, chunk_seconds=2, overlap_seconds=0.5)  # the folder's KenLM
features = speechssl.load(folder).features(audio[0], layers=[0, 2])
print(json.dumps({
    "greedy": [[t.text, [[w.word, w.start, w.end] for w in t.words], t.num_chunks] for t in greedy],
    "lm": [t.text for t in with_lm],
    "features": list(features.states.shape),
    "torch_modules": sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "torch" and v is not None),
}))
sys.exit(main(["transcribe", "--backend", "onnx", folder, *audio, "--format", "jsonl", "--chunk-seconds", "2",
               "--overlap", "0.5"]))
'''


def run_without_torch(folder, audio):
    done = subprocess.run([sys.executable, "-c", TORCH_BLOCKED, str(folder), *map(str, audio)],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first, *cli = done.stdout.splitlines()
    return json.loads(first), [json.loads(line) for line in cli]


def test_onnx_transcripts_without_torch_equal_the_torch_models(onnx_folder, tiny_checkpoint, lm_files, audio_files,
                                                              capsys):
    result, cli_records = run_without_torch(onnx_folder, audio_files)
    assert result["torch_modules"] == []

    greedy = load(tiny_checkpoint).transcribe(audio_files, chunk_seconds=2, overlap_seconds=0.5)
    assert [r[0] for r in result["greedy"]] == [t.text for t in greedy]
    assert all(t.text for t in greedy) and [r[2] for r in result["greedy"]] == [1, 1, 4]  # the long file chunked
    for (_, words, _), expected in zip(result["greedy"], greedy):
        assert words == [[w.word, w.start, w.end] for w in expected.words]

    arpa, lexicon = lm_files
    with_lm = load(tiny_checkpoint, decoder="kenlm", lm=arpa, lexicon=lexicon,
                   beam={"beam": 20, "lm_weight": 1.0, "word_score": 0.0}).transcribe(
        audio_files, chunk_seconds=2, overlap_seconds=0.5)
    assert result["lm"] == [t.text for t in with_lm]
    lm_words = {w for line in arpa.read_text().split("\\1-grams:")[1].split("\\2-grams:")[0].splitlines()[1:]
                for w in line.split()[1:2]}
    assert all(set(t.text.split()) <= lm_words for t in with_lm)  # lexicon words only

    assert result["features"] == [2, 64, 32]  # layers 0 and 2 of a.wav: 1.3 s = 20,800 samples -> 64 frames
    # The command line (folder's KenLM decoder) prints what the torch checkpoint prints with the same settings.
    assert main(["transcribe", str(tiny_checkpoint), *map(str, audio_files), "--format", "jsonl", "--chunk-seconds",
                 "2", "--overlap", "0.5", "--decoder", "kenlm", "--lm", str(arpa), "--lexicon", str(lexicon),
                 "--beam", "20", "--lm-weight", "1", "--word-score", "0", "--device", "cpu"]) == 0
    expected_records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cli_records == expected_records
