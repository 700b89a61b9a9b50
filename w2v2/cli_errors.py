"""What every ``w2v2-*`` console script shares: how it reads its arguments (flags, or one
.json/.yaml file holding them: ``parse_cli_args``), its log format, and how it reports a mistake
in its input: one line on stderr, ``error: <what went wrong and the fix>``, exit status 2, no
traceback.

Errors on user input are raised as ``ValueError`` (a value named with its fix) or as the
``OSError`` family (a missing, unreadable or full path). Anything else is a bug and keeps its
traceback. ``W2V2_DEBUG=1`` in the environment shows the traceback of every error.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["USER_ERRORS", "describe", "parse_cli_args", "run_cli"]

T = TypeVar("T")

USER_ERRORS = (ValueError, OSError)
EXIT_USER_ERROR = 2  # argparse's status for a bad command line, kept for every input error


def describe(error: BaseException) -> str:
    """``error`` as one line of words: a full disk and a missing path say so and name the file."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f" (writing {error.filename})" if error.filename else ""
        return f"no space left on the device{where}: free some space or choose an output folder on another disk."
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.strerror} ({error.filename})"
        if isinstance(error, FileNotFoundError):
            text += ": check the path (a dataset, model or audio argument)."
        return text
    return " ".join(str(error).split()) or type(error).__name__


def parse_cli_args(dataclass_types: Sequence[type], argv: list[str] | None = None) -> tuple[Any, ...]:
    """One instance per dataclass from ``argv`` (default: ``sys.argv[1:]``): flags, or a single
    ``.json``/``.yaml``/``.yml`` file that holds them (transformers' ``HfArgumentParser``)."""
    from transformers import HfArgumentParser

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return tuple(parser.parse_json_file(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return tuple(parser.parse_yaml_file(argv[0]))
    return tuple(parser.parse_args_into_dataclasses(args=argv))


def run_cli(main: Callable[[], T], *, log_progress: bool = False) -> T:
    """Run a console script's ``main``; a user-input error exits with one line and status 2.

    ``log_progress``: the trainers' INFO log lines (resume, precision, checkpoints) on stderr,
    timestamped. The library itself never configures logging: that is its caller's choice.
    """
    if log_progress:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if os.environ.get("W2V2_DEBUG", "") not in ("", "0"):
        return main()
    try:
        return main()
    except USER_ERRORS as error:
        print(f"error: {describe(error)} [W2V2_DEBUG=1 shows the traceback]", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
