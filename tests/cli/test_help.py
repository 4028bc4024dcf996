"""`--help` of every command shows each option's default, and the training apps list every choice of each
config group."""

from __future__ import annotations

import argparse
import importlib

import pytest

from speechssl.cli.main import COMMANDS, HYDRA_APPS, main, use_defaults_formatter


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in HYDRA_APPS])
def test_every_option_with_a_default_shows_it(command):
    parser = argparse.ArgumentParser(prog=f"speechssl {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    use_defaults_formatter(parser)
    checked = 0
    for sub in _parsers(parser):
        text = sub.format_help()  # every help string formats (no stray % in it)
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
                continue
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or not action.option_strings:
                continue
            assert "default" in action.help, (sub.prog, action.dest, action.help)
            if "%(default)s" in action.help:  # else the help words the default itself ("min(4, CPUs)")
                token = (str(action.default).split() or [""])[0][:10]
                assert token in text or isinstance(action.default, (list, tuple)), (sub.prog, action.dest)
            checked += 1
    if command in ("prepare", "features", "transcribe"):
        assert checked > 0


def test_prepare_synthetic_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "synthetic", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "hours of audio to generate (default: 1.0)" in out
    assert "--seed SEED (default: 0)" in out and "--test-speakers TEST_SPEAKERS speakers held out of train for " \
        "test (default: 8)" in out


@pytest.mark.parametrize("app", sorted(HYDRA_APPS))
def test_training_app_help_lists_every_group_choice(app, capsys):
    from speechssl.cli.train import conf_dir

    assert main([app, "--help"]) == 0
    out = capsys.readouterr().out
    for group in ("model", "schedule", "experiment"):
        names = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        label = "+experiment" if group == "experiment" else group
        assert f"  {label}: {', '.join(names)}" in out
