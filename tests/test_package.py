"""The package's shape: layers import only downwards, and the frame geometry and the sample rate are written
down once (their owners: `Wav2Vec2Config` and `speechssl.data.audio.SAMPLE_RATE`)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "speechssl"

# Bottom to top. A package may import its own modules and any package below it, never one above: the models
# and the data pipeline at the bottom (data asks the model config for the receptive field), the checkpoint
# formats (interop) on them, decoding (greedy/beam search, WER, evaluation) above those, training (which
# validates with decoding's decoder and scorer) above decoding, recipes above training, the CLI on top. deploy
# (ONNX export and the onnxruntime transcriber) sits on decoding and interop; nothing below it needs it.
LAYERS = {"models": 0, "data": 1, "interop": 2, "decoding": 3, "deploy": 4, "training": 5, "recipes": 6,
          "cli": 7}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every speechssl import in `source`, at module level or inside functions alike (a
    function import that hides an upward arrow is still an upward arrow); relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..data import y
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "speechssl":  # from speechssl import data -> the subpackage named
                found += [(node.lineno, f"speechssl.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "speechssl" or name.startswith("speechssl.")]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    """``file:line: A imports B`` for each import of `path` that points to a higher layer."""
    module = _module_name(path)
    own = _layer(module)
    problems = []
    text = path.read_text(encoding="utf-8") if source is None else source
    for line, target in _imported_modules(text, module, path.name == "__init__.py"):
        other = _layer(target)
        if own is not None and other is not None and LAYERS[other] > LAYERS[own]:
            problems.append(f"{path.relative_to(REPO)}:{line}: {own} imports {target} ({other} is above {own})")
    return problems


def test_every_subpackage_has_a_layer():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS), "place a new subpackage in LAYERS (tests/test_package.py)"


def test_no_module_imports_a_higher_layer():
    problems = [p for path in sorted(PACKAGE.rglob("*.py")) for p in upward_imports(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", [
    "from speechssl.cli.main import main\n",
    "def f():\n    from speechssl.training import loop\n",
    "import speechssl.recipes.subsets\n",
    "from speechssl import cli\n",
    "from ..training.checkpoint import rng_state\n",
])
def test_the_walk_sees_every_kind_of_upward_import(source):
    """The check above would fail: module-level, function-level, `import x.y`, `from speechssl import x` and
    relative imports from a lower layer are all found."""
    assert upward_imports(PACKAGE / "interop" / "probe.py", source)
    assert not upward_imports(PACKAGE / "cli" / "probe.py", source)  # the CLI may import anything


# Integer literals of the wav2vec 2.0 geometry (frame stride, receptive field) and the sample rate, with the
# places allowed to write them: the owner's definition, and numbers that only look the same.
GEOMETRY_NUMBERS = {320, 400, 16000}
ALLOWED = {
    ("speechssl/data/audio.py", "SAMPLE_RATE = 16_000"),  # the sample rate's one definition
    ("speechssl/data/audio.py", "AN4_RAW = RawFormat(sample_rate=16000"),  # AN4's own recording format
    ("speechssl/models/config.py", "latent_vars: int = 320"),  # codebook entries, not samples
    ("speechssl/interop/huggingface.py", '"num_codevectors_per_group": 320'),  # codebook entries
    ("speechssl/interop/fairseq.py", 'c.get("latent_vars", 320)'),  # codebook entries
}


def geometry_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the integer literals 320, 400 and 16000 in the code of `path` (comments, docstrings and
    messages are prose, not definitions)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type == tokenize.NUMBER:
            try:
                value = int(token.string.replace("_", ""), 0)
            except ValueError:  # floats (400.0 Hz tones), complex
                continue
            if value in GEOMETRY_NUMBERS:
                found.append((token.start[0], token.line.strip()))
    return found


def test_the_scan_finds_numbers_in_code_only(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('"""400 samples in prose"""\nstride = 320  # 400 in a comment\nrate = 16_000\n'
                    'tone = 400.0\nmessage = f"{n} < 400"\n', encoding="utf-8")
    assert [line for line, _ in geometry_literals(path)] == [2, 3]


def test_frame_geometry_and_sample_rate_are_written_once():
    """The conv stack in `Wav2Vec2Config` (strides 5*2^6 = 320, receptive field 400) and `SAMPLE_RATE` are the
    only sources: everything else asks them, so a model with another conv stack cannot be misaligned."""
    stray = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(REPO / "bench").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        for line, text in geometry_literals(path):
            if not any(rel == file and allowed in text for file, allowed in ALLOWED):
                stray.append(f"{rel}:{line}: {text}")
    assert not stray, "\n".join(stray)


def test_the_owners_give_the_numbers():
    from speechssl.data.audio import SAMPLE_RATE
    from speechssl.models import Wav2Vec2Config, feature_lengths

    cfg = Wav2Vec2Config()
    assert (cfg.geometry.frame_stride, cfg.geometry.receptive_field, SAMPLE_RATE) == (320, 400, 16000)
    # another conv stack: the closed form agrees with the layer-by-layer frame count everywhere
    other = cfg.replace(conv_dims=[32] * 4, conv_kernels=[7, 5, 3, 3], conv_strides=[4, 3, 2, 2])
    assert (other.frame_stride, other.receptive_field) == (48, 7 + 4 * 4 + 12 * 2 + 24 * 2)
    lengths = list(range(0, 2000, 7))
    for config in (cfg, other):
        assert [config.geometry.num_frames(n) for n in lengths] == feature_lengths(lengths, config).tolist()
