"""The ``recserver`` command line: one program, a subcommand per task (``recserver -h``).

Each command is a module of this package with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``: a thin adapter that parses options and calls one domain function.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from recserver import __version__

#: The command modules, in the order ``recserver -h`` lists them.
COMMANDS: tuple[str, ...] = (
    "serve", "recommend", "record", "items", "delete_user", "describe_user", "ingest_status",
    "check_config", "build", "build_ann", "builder", "worker",
    "evaluate", "tune", "compare", "replay",
)


DESCRIPTION = """\
recserver: real-time recommendations from a live behavioural graph, each answered inside a
per-request latency budget (a random walk, topped up from fallback tiers when time runs out).
"""

EPILOG = """\
start here:
  recserver serve                                  serve the embedded default (synthetic data);
                                                   it prints the address and a command to try
  recserver recommend --target HOST:PORT --user u12 --surface home
                                                   (in another shell) ask it for recommendations
  recserver check-config deploy/config.example.yaml
  recserver evaluate --events FILE                 offline quality of each strategy

"recserver COMMAND -h" shows a command's options and their defaults.
"""


def _add_verbose(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v`` before or after the subcommand; SUPPRESS keeps a subcommand from resetting it."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=False if top else argparse.SUPPRESS,
                        help="more logging: debug (default: info); the report commands "
                        "(evaluate, tune, compare, replay) log only warnings unless -v, then info")


def _module_name(command: str) -> str:
    return command.replace("-", "_")


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs (the first word that is not an option: the top-level
    options take no values), when it names one; else None."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word is not None and _module_name(word) in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` (a command's name) just that subcommand: each
    command module imports what it runs at the top, and a node's builder and workers are
    ``recserver builder`` / ``recserver worker`` processes that should not import (and hold)
    the evaluation, tuning and replay code every other command brings."""
    parser = argparse.ArgumentParser(
        prog="recserver", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recserver {__version__}")
    _add_verbose(parser, top=True)
    # Not required: without a command, ``main`` shows this help instead of a bare usage error.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS if only is None else (_module_name(only),):
        module = importlib.import_module(f"{__name__}.{command}")
        child = sub.add_parser(module.NAME, help=module.HELP)
        module.add_arguments(child)
        child.set_defaults(func=module.run, quiet_logs=getattr(module, "QUIET_LOGS", False))
        _add_verbose(child, top=False)
    return parser


def log_level(args: argparse.Namespace) -> int:
    """The root log level of a parsed command line.

    A report command (``QUIET_LOGS`` in its module) prints its result on stdout; its progress
    logs would bury that result, so it logs warnings only unless ``-v`` asks for info. The
    other commands run services whose logs are their output: info, or debug with ``-v``.
    """
    if getattr(args, "quiet_logs", False):
        return logging.INFO if args.verbose else logging.WARNING
    return logging.DEBUG if args.verbose else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        # Typed bare, ``recserver`` is asked what it can do: the help (with "start here") goes to
        # stdout, to read or page. Still exit 2, a usage error, like argparse's own refusal: a
        # script whose command word went missing must not pass for one that ran.
        parser.print_help()
        return 2
    logging.basicConfig(level=log_level(args),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:  # ConfigError and bad inputs: a message, not a trace
        print(f"recserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
