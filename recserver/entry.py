"""The ``recserver`` console entry point: a lean path for the node supervisor.

``recserver serve`` (without ``--single-process``) only starts and watches processes, so it is
parsed and run here without importing the rest of the package (numpy kernels, gRPC, FAISS):
the supervisor then holds a few tens of MB instead of the ~150 MB a full import costs. Every
other command goes to ``recserver.cli``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _is_node_serve(argv: Sequence[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] == "serve" and "--single-process" not in argv and \
        "-h" not in argv and "--help" not in argv


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not _is_node_serve(args_list):
        from recserver.cli import main as full_main

        return full_main(args_list)
    from recserver.node.commands import cmd_serve_node
    from recserver.node.serve_args import add_serve_args, add_source_args

    parser = argparse.ArgumentParser(prog="recserver")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    add_source_args(serve)
    add_serve_args(serve)
    args = parser.parse_args(args_list)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return cmd_serve_node(args)
    except (ValueError, OSError) as exc:  # a bad config or port: a message, not a trace
        print(f"recserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
