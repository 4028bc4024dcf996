"""The ``--raw-*`` options that give headerless PCM its format (``transcribe``, ``prepare folder``)."""

from __future__ import annotations

import argparse

from speechssl.data.audio import RawFormat


def add_raw_format_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """``--raw-rate`` (which turns raw reading on), ``--raw-subtype``, ``--raw-endian``, ``--raw-channels``."""
    raw = parser.add_argument_group(title)
    raw.add_argument("--raw-rate", type=int, default=None, metavar="HZ",
                     help="sampling rate of headerless PCM (e.g. 16000 for AN4's .raw, 8000 for telephone audio)")
    raw.add_argument("--raw-subtype", default="PCM_16",
                     help="soundfile subtype of one sample: PCM_16, PCM_24, ULAW, ALAW, FLOAT, ... "
                          "(default %(default)s)")
    raw.add_argument("--raw-endian", choices=("LITTLE", "BIG"), default="LITTLE",
                     help="byte order (default %(default)s; AN4 is BIG)")
    raw.add_argument("--raw-channels", type=int, default=1, help="interleaved channels (default %(default)s)")


def raw_format_from_args(args: argparse.Namespace) -> RawFormat | None:
    """The format the options describe, None without ``--raw-rate``. Raises ValueError naming ``--raw-*``."""
    if args.raw_rate is None:
        return None
    raw_format = RawFormat(sample_rate=args.raw_rate, channels=args.raw_channels, subtype=args.raw_subtype,
                           endian=args.raw_endian)
    try:
        raw_format.validate()
    except ValueError as exc:
        raise ValueError(f"--raw-*: {exc}") from exc
    return raw_format
