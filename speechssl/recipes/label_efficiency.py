"""The label-efficiency experiment: WER against minutes of transcribed audio, pretrained vs from scratch.

The paper's central claim (Baevski et al. 2020, Table 1) is that a pretrained encoder needs far fewer labels:
this runs that comparison on any prepared corpus. For each budget a seeded subset of the training split is
drawn, with one random order for every budget, so the 10-minute set lies inside the 60-minute one (as
Libri-light's sets do). Each subset is fine-tuned twice with ``speechssl finetune`` and the same overrides
and number of updates: from the pretrained checkpoint, and from random weights of the same architecture
(``scratch_init.pt``, seeded). Each model is then scored on the test subset with ``speechssl evaluate``.

Output directory:

    data/                  the subsets (train_<budget>.*), the valid and test splits, dict.ltr.txt
    data/subsets.json      what was drawn: source, seed, utterances and minutes per budget
    scratch_init.pt        random weights with the pretrained checkpoint's architecture
    runs/<budget>-<init>/  the fine-tuning run (checkpoints/, log.jsonl, finetune.log) and decode/ (evaluate --out)
    results.md  results.json  wer_vs_minutes.png

Each step leaves a marker (``.finetune.done``, ``.evaluate.done``, holding the command it ran) so a re-run
skips finished steps; an interrupted fine-tuning resumes from its last checkpoint (``trainer.resume=auto``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from speechssl.data.manifest import LabeledSplit, read_split
from speechssl.data.prepare.splits import duration_subset
from speechssl.recipes.results import markdown_table, read_score, relative_reduction
from speechssl.recipes.subsets import (
    SplitInfo,
    budget_name,
    copy_dictionaries,
    copy_split,
    select,
    split_seconds,
    write_split,
)

INITS = ("pretrained", "scratch")
# Keys the experiment sets itself for every run; a user override of one of them would be silently lost.
RESERVED_KEYS = ("init", "data.dir", "data.train_subset", "data.valid_subset", "trainer.run_dir")
# The fine-tuning app's progress bar would fill the run logs; a user override still wins.
DEFAULT_OVERRIDES = ("trainer.progress=false",)
# A random encoder cannot be "kept frozen while the head warms up" usefully: scratch runs train everything from
# the first update, the feature encoder included (scratch_init.pt is an `init`, which would otherwise freeze it
# as for a pretrained one), unless the user's scratch overrides say otherwise.
SCRATCH_DEFAULTS = ("freeze_finetune_updates=0", "model.feature_grad_mult=1.0")
# Hydra's empty string (data.valid_subset: no validation).
EMPTY = "''"

Logger = Callable[[str], None]


def _stderr_log(message: str) -> None:
    print(f"{time.strftime('%F %T')} label-efficiency: {message}", file=sys.stderr, flush=True)


@dataclass(kw_only=True)
class LabelEfficiencyConfig:
    """What to compare, on which data, where to write."""

    data_dir: Path
    """Prepared corpus: ``<train_subset>.tsv`` + ``.ltr``, the valid and test splits, ``dict.ltr.txt``."""
    out_dir: Path
    """Where subsets, runs and results go."""
    minutes: tuple[float, ...]
    """Label budgets in minutes of audio (drawn from the training split, nested)."""
    pretrained: Path | None = None
    """Pretrained checkpoint (speechssl .pt, Hugging Face directory or fairseq .pt); None = scratch runs only."""
    scratch: bool = True
    """Also fine-tune from random weights with the same budget and overrides."""
    train_subset: str = "train"
    """Split the budgets are drawn from."""
    valid_subset: str | None = "valid"
    """Split validated on during fine-tuning (best checkpoint by its WER); None = no validation."""
    test_subset: str = "test"
    """Split every model is scored on."""
    seed: int = 1
    """Seed of the subset order and of the scratch weights."""
    finetune_overrides: tuple[str, ...] = ()
    """Hydra overrides for every ``speechssl finetune`` run (``trainer.max_updates=300``, ``optim.lr=1e-4``)."""
    pretrained_overrides: tuple[str, ...] = ()
    """Extra overrides for the pretrained runs only (e.g. ``freeze_finetune_updates=100``)."""
    scratch_overrides: tuple[str, ...] = ()
    """Extra overrides for the scratch runs only (after ``freeze_finetune_updates=0``)."""
    evaluate_args: tuple[str, ...] = ()
    """Extra ``speechssl evaluate`` flags (``--decoder kenlm --lm LM.arpa``)."""
    checkpoint: str = "best"
    """Which checkpoint to evaluate: ``best`` (lowest validation WER; ``last`` when there is no valid split)
    or ``last``."""
    in_process: Callable[[list[str]], int] | None = None
    """The ``speechssl`` entry point to run each step inside this process with (the CLI passes
    ``speechssl.cli.main.main``; saves the seconds of start-up per step that matter for tiny models); None: each
    step is a subprocess, which frees its memory (GPU included) when it ends."""
    command: tuple[str, ...] = (sys.executable, "-m", "speechssl.cli.main")
    """How to start ``speechssl`` in a subprocess (the Python running this, by default)."""

    @property
    def inits(self) -> tuple[str, ...]:
        return tuple(i for i in INITS if (i == "pretrained" and self.pretrained is not None)
                     or (i == "scratch" and self.scratch))

    def validate(self) -> None:
        if not self.minutes:
            raise ValueError("--minutes: at least one budget is needed, e.g. --minutes 1,5,10")
        for m in self.minutes:
            if not m > 0:
                raise ValueError(f"--minutes: budgets must be > 0 minutes, got {m:g}")
        if len({budget_name(m) for m in self.minutes}) != len(self.minutes):
            raise ValueError(f"--minutes: budgets must differ, got {', '.join(f'{m:g}' for m in self.minutes)}")
        if not self.inits:
            raise ValueError("nothing to compare: give --pretrained CKPT, or leave scratch runs on")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"--checkpoint must be 'best' or 'last', got {self.checkpoint!r}")
        for override in (*self.finetune_overrides, *self.pretrained_overrides, *self.scratch_overrides):
            key = override.split("=", 1)[0].lstrip("+~")
            if "=" not in override:
                raise ValueError(f"fine-tuning overrides are Hydra key=value pairs, got {override!r}")
            if key in RESERVED_KEYS:
                raise ValueError(f"override {override!r}: {key} is set by label-efficiency for each run "
                                 f"(reserved: {', '.join(RESERVED_KEYS)})")


def parse_minutes(text: str) -> tuple[float, ...]:
    """``"1,5,10,60"`` -> ``(1.0, 5.0, 10.0, 60.0)`` (sorted)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--minutes: expected comma-separated numbers such as 1,5,10,60, got {text!r}") from None
    return tuple(sorted(values))


@dataclass(frozen=True, kw_only=True)
class Run:
    """One fine-tuning + evaluation: a budget and an initialisation."""

    minutes: float
    """Label budget (minutes)."""
    init: str
    """``pretrained`` or ``scratch``."""
    run_dir: Path
    """``trainer.run_dir`` of the fine-tuning."""

    @property
    def budget(self) -> str:
        return budget_name(self.minutes)

    @property
    def name(self) -> str:
        return f"{self.budget}-{self.init}"

    @property
    def decode_dir(self) -> Path:
        return self.run_dir / "decode"


@dataclass(frozen=True, kw_only=True)
class ResultRow:
    """A row of the table: one model's score on the test subset."""

    minutes: float
    """Requested budget (minutes)."""
    budget: str
    """Its name (``10min``, ``1h``)."""
    init: str
    """``pretrained`` or ``scratch``."""
    utterances: int
    """Utterances in the subset."""
    labeled_minutes: float
    """Audio in the subset (at least the budget: the last utterance drawn crosses it)."""
    wer: float
    """Test WER (%), as ``speechssl evaluate`` wrote it."""
    cer: float
    """Test CER (%)."""
    checkpoint: str
    """The evaluated checkpoint."""
    decode_dir: str
    """``evaluate --out`` directory: recogs-, errs-, wer-summary- files of the test subset."""


@dataclass(kw_only=True)
class LabelEfficiencyResult:
    """Every row and the files written."""

    rows: list[ResultRow] = field(default_factory=list)
    markdown: Path | None = None
    json: Path | None = None
    plot: Path | None = None


# ---------------------------------------------------------------------------------------------- inputs
def check_inputs(cfg: LabelEfficiencyConfig) -> LabeledSplit:
    """Everything a run needs exists and the largest budget fits in the training split; returns that split."""
    cfg.validate()
    data = cfg.data_dir
    if not data.is_dir():
        raise FileNotFoundError(f"DATA_DIR: directory not found: {data}")
    if not (data / "dict.ltr.txt").is_file():
        raise FileNotFoundError(f"DATA_DIR: no dict.ltr.txt in {data} (prepare the corpus with transcripts)")
    for name in (cfg.train_subset, cfg.valid_subset, cfg.test_subset):
        if name and not (data / f"{name}.tsv").is_file():
            raise FileNotFoundError(f"DATA_DIR: split {name!r} not found: {data / f'{name}.tsv'}")
    for name in (cfg.train_subset, cfg.test_subset):
        if not (data / f"{name}.ltr").is_file():
            raise FileNotFoundError(f"DATA_DIR: split {name!r} has no letter labels: {data / f'{name}.ltr'}")
    if cfg.pretrained is not None and not cfg.pretrained.exists():
        raise FileNotFoundError(f"--pretrained: checkpoint not found: {cfg.pretrained}")
    train = read_split(data, cfg.train_subset, require_labels=True)
    total = split_seconds(train) / 60
    too_big = [m for m in cfg.minutes if m > total]
    if too_big:
        raise ValueError(f"--minutes: {', '.join(f'{m:g}' for m in too_big)} minutes asked, but the "
                         f"{cfg.train_subset!r} split of {data} holds {total:.2f} minutes "
                         f"({len(train.manifest)} utterances); budgets must be at most that")
    return train


def draw_subsets(cfg: LabelEfficiencyConfig, train: LabeledSplit) -> dict[float, SplitInfo]:
    """Write the nested subsets, the valid/test splits and the dictionary into ``OUT/data``.

    ``subsets.json`` records the draw; a later call with another source or seed into the same directory fails
    rather than mix runs of different subsets.
    """
    data_out = cfg.out_dir / "data"
    record_path = data_out / "subsets.json"
    source = {"data_dir": str(cfg.data_dir.resolve()), "train_subset": cfg.train_subset, "seed": cfg.seed}
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    if record and record.get("source") != source:
        raise ValueError(f"{cfg.out_dir} holds runs on other subsets ({record.get('source')}); "
                         f"use another --out for {source}")
    copy_dictionaries(cfg.data_dir, data_out)
    for name in filter(None, {cfg.valid_subset, cfg.test_subset}):
        copy_split(cfg.data_dir, name, data_out)
    budgets = dict(record.get("budgets", {}))
    infos: dict[float, SplitInfo] = {}
    for minutes in cfg.minutes:
        indices = duration_subset(train.manifest.sizes, minutes * 60, cfg.seed)
        info = write_split(data_out, f"train_{budget_name(minutes)}", select(train, indices))
        drawn = {"minutes": minutes, "utterances": info.utterances, "seconds": round(info.seconds, 3)}
        if budgets.get(info.name, drawn) != drawn:
            raise ValueError(f"{record_path}: {info.name} was {budgets[info.name]}, now {drawn}: the training "
                             f"split changed; use another --out")
        budgets[info.name] = drawn
        infos[minutes] = info
    record_path.write_text(json.dumps({"source": source, "budgets": budgets}, indent=2) + "\n", encoding="utf-8")
    return infos


def scratch_checkpoint(cfg: LabelEfficiencyConfig, log: Logger) -> Path | None:
    """Random weights with the pretrained model's architecture (seeded), so that both runs differ only in
    the initial weights; None without a pretrained checkpoint (scratch runs then take ``model=...``)."""
    if cfg.pretrained is None:
        return None
    path = cfg.out_dir / "scratch_init.pt"
    if path.is_file():
        return path
    import torch

    from speechssl.interop import load_model, save_speechssl_checkpoint
    from speechssl.models import Wav2Vec2ForPreTraining

    config = load_model(cfg.pretrained).config
    torch.manual_seed(cfg.seed)
    save_speechssl_checkpoint(path, Wav2Vec2ForPreTraining(config))
    log(f"wrote {path}: random weights with the architecture of {cfg.pretrained}")
    return path


# ---------------------------------------------------------------------------------------------- runs
def plan(cfg: LabelEfficiencyConfig) -> list[Run]:
    """Every (budget, init) run, smallest budget first."""
    return [Run(minutes=m, init=init, run_dir=cfg.out_dir / "runs" / f"{budget_name(m)}-{init}")
            for m in cfg.minutes for init in cfg.inits]


def finetune_command(cfg: LabelEfficiencyConfig, run: Run, scratch_init: Path | None) -> list[str]:
    """``speechssl finetune`` overrides of a run: defaults, the user's, then the run's own keys."""
    init = cfg.pretrained if run.init == "pretrained" else scratch_init
    extra = cfg.pretrained_overrides if run.init == "pretrained" else (*SCRATCH_DEFAULTS, *cfg.scratch_overrides)
    args = ["finetune", *DEFAULT_OVERRIDES, *cfg.finetune_overrides, *extra,
            f"data.dir={cfg.out_dir / 'data'}", f"data.train_subset=train_{run.budget}",
            f"data.valid_subset={cfg.valid_subset or EMPTY}", f"trainer.run_dir={run.run_dir}"]
    if init is not None:
        args.append(f"init={init}")
    return args


def evaluated_checkpoint(cfg: LabelEfficiencyConfig, run: Run) -> Path:
    ckpt_dir = run.run_dir / "checkpoints"
    best = ckpt_dir / "checkpoint_best.pt"
    return best if cfg.checkpoint == "best" and best.is_file() else ckpt_dir / "checkpoint_last.pt"


def evaluate_command(cfg: LabelEfficiencyConfig, run: Run) -> list[str]:
    return ["evaluate", str(evaluated_checkpoint(cfg, run)), str(cfg.out_dir / "data"), "--subset",
            cfg.test_subset, "--out", str(run.decode_dir), *cfg.evaluate_args]


def run_step(cfg: LabelEfficiencyConfig, marker: Path, args: list[str], log_path: Path, what: str,
             log: Logger) -> bool:
    """Run ``speechssl ARGS`` (output to ``log_path``) unless ``marker`` exists; True when it ran."""
    if marker.is_file():
        before = json.loads(marker.read_text(encoding="utf-8") or "[]")
        note = "" if before == args else f" (with other arguments, see {marker}; delete it to redo)"
        log(f"{what}: done already{note}")
        return False
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"{what}: speechssl {' '.join(args)}")
    start = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as out:
        code = _in_process(cfg.in_process, args, out) if cfg.in_process is not None else subprocess.run(
            [*cfg.command, *args], check=False, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1")).returncode
    if code != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{what}: `speechssl {args[0]}` failed with exit code {code}; the end of {log_path}:\n"
                           f"{tail}")
    marker.write_text(json.dumps(args) + "\n", encoding="utf-8")
    log(f"{what}: finished in {time.perf_counter() - start:.1f} s")
    return True


def _in_process(main: Callable[[list[str]], int], args: list[str], out: TextIO) -> int:
    """``main(ARGS)`` (the ``speechssl`` entry point) in this process, its output into ``out``; the exit code
    (1 on an exception)."""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            return int(main(args) or 0)
        except SystemExit as exc:  # argparse errors
            return exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - reported as a subprocess would: traceback in the log, exit 1
            traceback.print_exc()
            return 1


# ---------------------------------------------------------------------------------------------- results
def collect(cfg: LabelEfficiencyConfig, runs: Sequence[Run], infos: dict[float, SplitInfo]) -> list[ResultRow]:
    """The test scores ``speechssl evaluate`` wrote for each run."""
    rows = []
    for run in runs:
        score = read_score(run.decode_dir, cfg.test_subset)
        info = infos[run.minutes]
        rows.append(ResultRow(minutes=run.minutes, budget=run.budget, init=run.init, utterances=info.utterances,
                              labeled_minutes=round(info.minutes, 3), wer=score.wer, cer=score.cer,
                              checkpoint=str(evaluated_checkpoint(cfg, run)), decode_dir=str(run.decode_dir)))
    return rows


def comparisons(rows: Sequence[ResultRow]) -> list[dict[str, object]]:
    """Per budget with both inits: scratch WER, pretrained WER and the relative reduction."""
    out = []
    for minutes in dict.fromkeys(r.minutes for r in rows):
        by_init = {r.init: r for r in rows if r.minutes == minutes}
        if "pretrained" in by_init and "scratch" in by_init:
            s, p = by_init["scratch"].wer, by_init["pretrained"].wer
            out.append({"budget": by_init["scratch"].budget, "minutes": minutes, "scratch_wer": s,
                        "pretrained_wer": p, "relative_reduction": relative_reduction(s, p)})
    return out


def write_tables(cfg: LabelEfficiencyConfig, rows: Sequence[ResultRow], out_prefix: Path) -> tuple[Path, Path]:
    """``results.md`` (the table, then pretrained vs scratch) and ``results.json`` (every number)."""
    table = markdown_table(
        ["labels", "init", "utterances", "minutes", f"{cfg.test_subset} WER", f"{cfg.test_subset} CER"],
        [[r.budget, r.init, r.utterances, r.labeled_minutes, r.wer, r.cer] for r in rows])
    text = (f"### WER (%) on {cfg.test_subset} against labeled minutes\n\n"
            f"data: {cfg.data_dir} ({cfg.train_subset}, seed {cfg.seed}); pretrained: {cfg.pretrained}\n\n"
            f"{table}\n")
    compared = comparisons(rows)
    if compared:
        text += "\n### pretrained vs scratch\n\n" + markdown_table(
            ["labels", "scratch WER", "pretrained WER", "relative reduction"],
            [[c["budget"], c["scratch_wer"], c["pretrained_wer"],
              None if c["relative_reduction"] is None else f"{100 * c['relative_reduction']:.1f} %"]
             for c in compared]) + "\n"
    md, js = out_prefix.with_suffix(".md"), out_prefix.with_suffix(".json")
    md.write_text(text, encoding="utf-8")
    meta = {"data_dir": str(cfg.data_dir), "train_subset": cfg.train_subset, "test_subset": cfg.test_subset,
            "seed": cfg.seed, "pretrained": None if cfg.pretrained is None else str(cfg.pretrained),
            "finetune_overrides": list(cfg.finetune_overrides), "evaluate_args": list(cfg.evaluate_args)}
    js.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows], "comparisons": compared}, indent=2) + "\n",
                  encoding="utf-8")
    return md, js


def plot_wer(rows: Sequence[ResultRow], path: Path, *, title: str) -> Path:
    """WER against labeled minutes (log x axis), one line per initialisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for init, style in (("pretrained", "o-"), ("scratch", "s--")):
        mine = sorted((r for r in rows if r.init == init), key=lambda r: r.minutes)
        if mine:
            ax.plot([r.minutes for r in mine], [r.wer for r in mine], style, label=init)
    budgets = sorted({r.minutes for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([budget_name(m) for m in budgets])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("labeled audio")
    ax.set_ylabel("WER (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- driver
def run_label_efficiency(cfg: LabelEfficiencyConfig, log: Logger = _stderr_log) -> LabelEfficiencyResult:
    """Draw the subsets, fine-tune and evaluate every (budget, init) not finished yet, write table and plot."""
    train = check_inputs(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    infos = draw_subsets(cfg, train)
    for minutes, info in infos.items():
        log(f"subset {info.name}: {info.utterances} utterances, {info.minutes:.2f} min (budget {minutes:g} min)")
    scratch_init = scratch_checkpoint(cfg, log) if "scratch" in cfg.inits else None
    runs = plan(cfg)
    for k, run in enumerate(runs, 1):
        what = f"[{k}/{len(runs)}] {run.name}"
        run_step(cfg, run.run_dir / ".finetune.done", finetune_command(cfg, run, scratch_init),
                 run.run_dir / "finetune.log", f"{what} fine-tune", log)
        run_step(cfg, run.decode_dir / ".evaluate.done", evaluate_command(cfg, run), run.run_dir / "evaluate.log",
                 f"{what} evaluate", log)
        score = read_score(run.decode_dir, cfg.test_subset)
        log(f"{what}: {cfg.test_subset} WER {score.wer:.2f} %, CER {score.cer:.2f} %")
    rows = collect(cfg, runs, infos)
    md, js = write_tables(cfg, rows, cfg.out_dir / "results")
    png = plot_wer(rows, cfg.out_dir / "wer_vs_minutes.png",
                   title=f"{cfg.data_dir}: WER on {cfg.test_subset} vs labeled audio")
    log(f"wrote {md}, {js} and {png}")
    return LabelEfficiencyResult(rows=rows, markdown=md, json=js, plot=png)
