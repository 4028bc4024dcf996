"""RunLogger: a progress bar only on a terminal (redirected into a log, tqdm's carriage returns fill it)."""

from __future__ import annotations

import io
import sys

import pytest

from speechssl.training.logging import RunLogger, read_log


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bar_only_when_stderr_is_a_terminal(tmp_path, monkeypatch, terminal):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logger = RunLogger(tmp_path, tensorboard=False, progress=True, total_updates=5)
    for n in range(1, 4):
        logger.log("train", n, {"loss": 1.0 / n})
        logger.progress(n, {"loss": 1.0 / n})
    logger.close()
    assert ("upd" in stderr.getvalue()) == terminal  # tqdm's unit: the bar was drawn, or nothing at all
    assert [r["update"] for r in read_log(tmp_path)] == [1, 2, 3]  # the log itself either way
