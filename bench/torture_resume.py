"""Kill-and-resume torture test: SIGKILL a `tiny` pretraining run at random points, resume with resume=auto.

Each kill is drawn from three kinds (``--modes``):

- ``update``: the ``SPEECHSSL_KILL_AFTER_UPDATE`` fault injection of ``speechssl.training.loop`` SIGKILLs the
  process right after a random update, before that update's checkpoint is written;
- ``wall``: SIGKILL from outside at a random wall time once training runs (inside an update, a log write, a
  checkpoint write: wherever it lands);
- ``write``: SIGKILL from outside the moment a random checkpoint write has its temp file open (mid
  ``torch.save``, fsync or rename).

After every kill each ``checkpoint_*.pt`` of the run is loaded (none may be unreadable) and leftover temp files
are counted; the next launch must resume from the newest checkpoint, and becomes the next kill's victim. After
the last kill one launch runs to the end; its final weights and optimizer state must equal, bit for bit, those
of an uninterrupted run with the same config.

    OMP_NUM_THREADS=1 .venv/bin/python bench/torture_resume.py [--kills 10] [--seed 0] [--run-dir DIR]
        [--updates 60] [--save-interval 3] [--modes update,wall,write] [--json OUT.json]

Exit status 0 when every kill was survived, no checkpoint was unreadable and the final weights are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechssl.data.audio import SAMPLE_RATE
from speechssl.data.prepare.folder import prepare_folder
from speechssl.interop.checkpoint import CheckpointError, load_checkpoint
from speechssl.training.loop import KILL_AFTER_UPDATE_ENV

REPO = Path(__file__).resolve().parents[1]
SR = SAMPLE_RATE
MODES = ("update", "wall", "write")
# Fast and deterministic: tiny model, one thread, no workers, fp32, no TensorBoard.
TRAIN_ARGS = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
              "trainer.tensorboard=false", "trainer.threads=1", "data.num_workers=0", "trainer.log_interval=1",
              "data.max_tokens=64000", "data.max_sample_size=16000", "data.min_sample_size=4000",
              "schedule.warmup_updates=5", "optim.lr=1e-3", "trainer.valid_interval=0"]
_RESUMED = re.compile(r"resumed from (\S+) at update (\d+)")


def make_corpus(root: Path, n: int = 24, seed: int = 0) -> Path:
    """`n` tone utterances (one tone per word, as tests/training/conftest.py) -> `root/data` manifests."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pieces = []
        for freq in rng.choice([400.0, 900.0, 1600.0], size=int(rng.integers(1, 4))):
            m = int(SR * rng.uniform(0.35, 0.5))
            pieces += [0.5 * np.hanning(m) * np.sin(2 * np.pi * freq * np.arange(m) / SR), np.zeros(SR // 12)]
        wave = np.concatenate(pieces)
        sf.write(audio / f"utt{i:03d}.wav", (wave + 0.01 * rng.standard_normal(wave.shape)).astype(np.float32), SR,
                 subtype="PCM_16")
    prepare_folder(audio, root / "data", valid_percent=0.2, seed=1, progress=False, echo=False)
    return root / "data"


def _command(data: Path, run_dir: Path, updates: int, save_interval: int) -> list[str]:
    return [sys.executable, "-m", "speechssl.cli.main", "pretrain", f"data.dir={data}", *TRAIN_ARGS,
            f"trainer.max_updates={updates}", f"trainer.save_interval={save_interval}",
            f"trainer.run_dir={run_dir}", "trainer.resume=auto"]


def _launch(cmd: list[str], log: Path, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _temp_files(ckpt_dir: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(ckpt_dir) if e.name.startswith(".") and e.name.endswith(".tmp"))
    except FileNotFoundError:
        return []


@dataclass(kw_only=True)
class CheckpointScan:
    """Every checkpoint file of a run directory, loaded."""

    readable: dict[str, int] = field(default_factory=dict)
    """File name -> the update it holds."""
    unreadable: list[str] = field(default_factory=list)
    """Files that do not load (must stay empty)."""
    temp_files: list[str] = field(default_factory=list)
    """Leftover `.checkpoint_*.tmp` files of interrupted writes."""

    @property
    def newest(self) -> int:
        return max(self.readable.values(), default=0)


def scan_checkpoints(run_dir: Path) -> CheckpointScan:
    ckpt_dir = run_dir / "checkpoints"
    scan = CheckpointScan(temp_files=_temp_files(ckpt_dir))
    for path in sorted(ckpt_dir.glob("checkpoint_*.pt")) if ckpt_dir.is_dir() else []:
        try:
            scan.readable[path.name] = int(load_checkpoint(path)["train_state"]["num_updates"])
        except (CheckpointError, KeyError) as exc:
            scan.unreadable.append(f"{path.name}: {exc}")
    return scan


@dataclass(kw_only=True)
class Kill:
    """One launch that was killed, and what the run directory held afterwards."""

    index: int
    mode: str
    target: str
    """What the kill aimed at."""
    returncode: int | None
    """-9 when SIGKILL ended it; 0 when the run finished before the kill landed."""
    start_update: int
    """The update this launch resumed at (0: fresh start)."""
    expected_start: int
    """The newest readable checkpoint's update before this launch."""
    last_logged_update: int
    """The last update this launch logged before it died."""
    checkpoint_after: int
    """The newest readable checkpoint's update after the kill."""
    unreadable: list[str]
    temp_files: int
    """Leftover temp files of interrupted checkpoint writes in the directory after the kill."""
    during_write: bool
    """The kill cut a checkpoint write of this launch short (it left a new temp file)."""

    @property
    def survived(self) -> bool:
        return self.returncode == -signal.SIGKILL and self.start_update == self.expected_start and not self.unreadable


def _start_update(log_text: str) -> int:
    m = _RESUMED.search(log_text)
    return int(m.group(2)) if m else 0


def _log_size(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    return path.stat().st_size if path.is_file() else 0


def _last_logged(run_dir: Path, offset: int) -> int:
    """The last update a launch logged: train records past byte `offset` of log.jsonl (torn lines ignored)."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", errors="replace")
    last = 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("split") == "train":
            last = max(last, int(record["update"]))
    return last


def _wait_for_update(proc: subprocess.Popen, run_dir: Path, offset: int, update: int, timeout: float = 300) -> bool:
    """Until this launch (its records start at byte `offset` of log.jsonl) has logged `update` (True) or exited
    (False); update 0 waits for nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if update <= 0 or _last_logged(run_dir, offset) >= update:
            return True
        time.sleep(0.002)
    return False


def kill_once(index: int, mode: str, target: int, rng: random.Random, cmd: list[str], run_dir: Path,
              seconds_per_update: float) -> Kill:
    """Launch (resuming) and SIGKILL the process around update `target`, as `mode` says."""
    before = scan_checkpoints(run_dir)
    start = before.newest
    target = max(target, start + 1)  # a resumed launch never sees the updates before its checkpoint
    log = run_dir.parent / f"launch_{index:02d}.log"
    ckpt_dir = run_dir / "checkpoints"
    offset = _log_size(run_dir)
    if mode == "update":
        what = f"right after update {target}"
        proc = _launch(cmd, log, {KILL_AFTER_UPDATE_ENV: str(target)})
    elif mode == "wall":
        # a random instant of update `target`: its forward/backward, log line or checkpoint write
        delay = rng.uniform(0.0, seconds_per_update)
        what = f"{1000 * delay:.0f} ms after update {target - 1}"
        proc = _launch(cmd, log)
        if _wait_for_update(proc, run_dir, offset, target - 1):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
    else:  # write: the first checkpoint write from update `target` on, a random instant after it starts
        delay = rng.uniform(0.0, 0.002)
        what = f"1st write after update {target - 1}, +{1000 * delay:.1f} ms"
        seen = set(before.temp_files)
        proc = _launch(cmd, log)
        if _wait_for_update(proc, run_dir, offset, target - 1):
            seen.update(_temp_files(ckpt_dir))
            while proc.poll() is None:
                if any(t not in seen for t in _temp_files(ckpt_dir)):
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.0002)
    proc.wait()
    after = scan_checkpoints(run_dir)
    return Kill(index=index, mode=mode, target=what, returncode=proc.returncode,
                start_update=_start_update(log.read_text()), expected_start=start,
                last_logged_update=_last_logged(run_dir, offset), checkpoint_after=after.newest,
                unreadable=after.unreadable, temp_files=len(after.temp_files),
                during_write=bool(set(after.temp_files) - set(before.temp_files)))


def compare_final(reference: Path, tortured: Path) -> dict[str, object]:
    """Bit equality of the final model weights and optimizer state of two runs."""
    a = load_checkpoint(reference / "checkpoints/checkpoint_last.pt")
    b = load_checkpoint(tortured / "checkpoints/checkpoint_last.pt")
    model_diff = [k for k, v in a["model"].items() if not torch.equal(v, b["model"][k])]
    optim_diff = []
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            other = b["optimizer"]["state"][key][name]
            if not (torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other):
                optim_diff.append(f"{key}.{name}")
    return {"updates": [a["train_state"]["num_updates"], b["train_state"]["num_updates"]],
            "model_tensors": len(a["model"]), "model_differ": model_diff, "optimizer_differ": optim_diff,
            "equal": not model_diff and not optim_diff
            and a["train_state"]["num_updates"] == b["train_state"]["num_updates"]}


def _table(kills: list[Kill]) -> str:
    head = ("kill", "mode", "target", "rc", "resumed at", "expected", "died after", "in a write", "newest ckpt",
            "unreadable", "survived")
    rows = [head] + [(str(k.index), k.mode, k.target, str(k.returncode), str(k.start_update), str(k.expected_start),
                      str(k.last_logged_update), "yes" if k.during_write else "-", str(k.checkpoint_after),
                      str(len(k.unreadable)), "yes" if k.survived else "NO") for k in kills]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs before the last launch (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points and modes (default 0)")
    parser.add_argument("--run-dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--updates", type=int, default=60, help="trainer.max_updates (default 60)")
    parser.add_argument("--save-interval", type=int, default=3, help="trainer.save_interval (default 3)")
    parser.add_argument("--modes", default=",".join(MODES), help="kill kinds to draw from (default all three)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: expected a comma-separated subset of {','.join(MODES)}, got {args.modes!r}")
    if args.updates < 2 * args.save_interval or args.save_interval < 1:
        parser.error(f"--updates ({args.updates}) must hold at least two --save-interval ({args.save_interval})")
    if args.kills < 0:
        parser.error(f"--kills must be >= 0, got {args.kills}")

    with tempfile.TemporaryDirectory(prefix="torture_") as tmp:
        root = (args.run_dir or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        data = make_corpus(root / "corpus")
        reference, tortured = root / "reference", root / "tortured"
        for d in (reference, tortured):
            if d.exists():
                parser.error(f"{d} exists: use a fresh --run-dir")

        t0 = time.perf_counter()
        ref = subprocess.run(_command(data, reference, args.updates, args.save_interval), check=False, cwd=REPO,
                             env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
        if ref.returncode != 0:
            print(ref.stdout[-2000:], ref.stderr[-3000:], file=sys.stderr)
            return 1
        records = [json.loads(line) for line in (reference / "log.jsonl").read_text().splitlines()]
        times = [r["time"] for r in records if r["split"] == "train"]
        per_update = (times[-1] - times[0]) / max(len(times) - 1, 1)
        print(f"uninterrupted run: {args.updates} updates in {time.perf_counter() - t0:.1f} s "
              f"({1000 * per_update:.0f} ms per update)", flush=True)

        rng = random.Random(args.seed)
        # kill points spread over the whole run: distinct random updates, in order
        targets = sorted(rng.sample(range(1, args.updates), min(args.kills, args.updates - 1)))
        # every mode as evenly as the count allows, in random order
        kinds = [modes[i % len(modes)] for i in range(len(targets))]
        rng.shuffle(kinds)
        cmd = _command(data, tortured, args.updates, args.save_interval)
        kills: list[Kill] = []
        tortured.mkdir(parents=True)
        for i, (kind, target) in enumerate(zip(kinds, targets), 1):
            kill = kill_once(i, kind, target, rng, cmd, tortured, per_update)
            kills.append(kill)
            print(f"kill {i}: {kill.mode} ({kill.target}) rc={kill.returncode} resumed at {kill.start_update} "
                  f"(expected {kill.expected_start}), died after update {kill.last_logged_update}"
                  f"{' inside a checkpoint write' if kill.during_write else ''}, newest checkpoint "
                  f"{kill.checkpoint_after}, unreadable {len(kill.unreadable)}", flush=True)
            if kill.returncode == 0:
                print("  the run finished before the kill landed: stopping here", flush=True)
                break
        before_final = scan_checkpoints(tortured).newest
        final_log = root / "launch_final.log"
        final = _launch(cmd, final_log)
        final.wait()
        final_start = _start_update(final_log.read_text())
        result = compare_final(reference, tortured) if final.returncode == 0 else {"equal": False}
        leftover = scan_checkpoints(tortured)
        # nothing lost from the log either: every update has a train record (re-run ones have two)
        logged = {json.loads(line)["update"] for line in (tortured / "log.jsonl").read_text().splitlines()
                  if line.startswith("{") and line.endswith("}") and '"split": "train"' in line}
        missing = sorted(set(range(1, args.updates + 1)) - logged)

        survived = sum(k.survived for k in kills)
        summary = {
            "kills_requested": args.kills,
            "kills_landed": sum(k.returncode == -signal.SIGKILL for k in kills),
            "kills_survived": survived,
            "by_mode": {m: sum(k.mode == m for k in kills) for m in modes},
            "unreadable_checkpoints": sum(len(k.unreadable) for k in kills) + len(leftover.unreadable),
            "kills_during_checkpoint_write": sum(k.during_write for k in kills),
            "temp_files_left_at_end": len(leftover.temp_files),
            "final_resume_ok": final.returncode == 0 and final_start == before_final,
            "final_weights_equal": bool(result["equal"]),
            "log_updates_missing": missing,
            "final": result,
            "kills": [asdict(k) | {"survived": k.survived} for k in kills],
            "seed": args.seed, "updates": args.updates, "save_interval": args.save_interval,
        }
        print()
        print(_table(kills))
        print()
        print(f"kills survived            {survived} / {len(kills)} "
              f"({', '.join(f'{m} {n}' for m, n in summary['by_mode'].items())})")
        print(f"unreadable checkpoints    {summary['unreadable_checkpoints']}")
        print(f"kills inside a checkpoint write  {summary['kills_during_checkpoint_write']} "
              f"(temp files left at the end: {summary['temp_files_left_at_end']})")
        print(f"final resume              {'ok' if summary['final_resume_ok'] else 'FAILED'} "
              f"(from update {final_start}, rc {final.returncode})")
        print(f"updates missing from log  {len(missing)} {missing[:10] if missing else ''}".rstrip())
        print(f"final weights == uninterrupted run: {'yes' if result['equal'] else 'NO'} "
              f"({result.get('model_tensors', '?')} model tensors + optimizer state, "
              f"updates {result.get('updates')})")
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        ok = (survived == len(kills) == args.kills and summary["unreadable_checkpoints"] == 0
              and summary["final_resume_ok"] and summary["final_weights_equal"] and not missing)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
