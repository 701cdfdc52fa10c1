"""The ``lmsieve`` command line.

Each subcommand lives in its own module under ``lmsieve/cli/`` and exposes
``add_parser(subparsers)``, which registers the command and sets ``func`` (called with the parsed
arguments; returns an exit code). Errors about input or configuration print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lmsieve.schemas.errors import LmsieveError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = [
    "lmsieve.cli.score_cmd",
    "lmsieve.cli.select_cmd",
    "lmsieve.cli.demo_cmd",
    "lmsieve.cli.run_cmd",
    "lmsieve.cli.featurize_cmd",
    "lmsieve.cli.train_proxy_cmd",
    "lmsieve.cli.train_sae_cmd",
    "lmsieve.cli.eval_cmd",
    "lmsieve.cli.release_cmd",
    "lmsieve.cli.verify_cmd",
    "lmsieve.cli.mix_cmd",
    "lmsieve.cli.prefilter_cmd",
    "lmsieve.cli.models_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    from lmsieve import __version__

    parser = argparse.ArgumentParser(
        prog="lmsieve",
        description=(
            "Select training data that looks like a target. Score a pool of documents "
            "(Parquet with 'id' and 'text' columns) against target examples, keep the best, "
            "and write the selection with a manifest. Start with `lmsieve demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lmsieve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except LmsieveError as exc:
        print(f"lmsieve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"lmsieve {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
