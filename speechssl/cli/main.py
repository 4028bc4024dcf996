"""The `speechssl` command.

Every sub-command lives in its own module ``speechssl.cli.<name>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only
when their sub-command runs so that ``speechssl --help`` stays fast.
Hydra is imported only by the training apps (``pretrain``, ``finetune``),
which take Hydra overrides (``key=value``) instead of flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("speechssl.cli.prepare", "make manifests (and labels) from audio: folder, librispeech, ..."),
    "pretrain": ("speechssl.cli.train", "self-supervised pretraining (Hydra overrides: key=value ...)"),
    "finetune": ("speechssl.cli.train", "CTC fine-tuning (Hydra overrides: key=value ...)"),
    "evaluate": ("speechssl.cli.evaluate", "decode a prepared subset and report WER/CER"),
    "transcribe": ("speechssl.cli.transcribe", "transcribe audio files of any length"),
    "features": ("speechssl.cli.features", "dump layer-wise representations"),
    "lm": ("speechssl.cli.lm", "build an n-gram language model and lexicon"),
    "convert": ("speechssl.cli.convert", "import/export Hugging Face and fairseq checkpoints"),
    "export": ("speechssl.cli.export", "export a CTC model to ONNX (fp32 or int8) for onnxruntime, without torch"),
    "plot": ("speechssl.cli.plot", "plot the training curves of a run directory"),
    "label-efficiency": ("speechssl.cli.label_efficiency", "WER against labeled minutes, pretrained vs scratch"),
}

HYDRA_APPS = {"pretrain", "finetune"}
MODEL_COMMANDS = {"evaluate", "transcribe", "features"}


def use_defaults_formatter(parser: argparse.ArgumentParser) -> None:
    """End every option's help in `parser` and its sub-command parsers with the option's default (unless the help
    states it already, or there is none to state)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                use_defaults_formatter(child)
            continue
        if action.help == argparse.SUPPRESS or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            continue
        if not action.option_strings and action.nargs not in ("?", "*"):
            continue  # a required positional
        if "default" not in (action.help or ""):
            action.help = f"{action.help} (default: %(default)s)" if action.help else "(default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechssl",
        description="wav2vec 2.0 self-supervised speech recognition: prepare, pretrain, finetune, evaluate.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0
    if argv[0] == "--version":
        from speechssl import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; expected one of: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    if name in HYDRA_APPS:
        return int(module.run_app(name, rest) or 0)
    sub_parser = argparse.ArgumentParser(prog=f"speechssl {name}", description=COMMANDS[name][1])
    module.add_arguments(sub_parser)
    use_defaults_formatter(sub_parser)
    args = sub_parser.parse_args(rest)
    if name in MODEL_COMMANDS:
        from speechssl.training.allocator import keep_freed_memory

        keep_freed_memory()  # as training does (trainer.keep_freed_memory): batches reuse freed memory
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
