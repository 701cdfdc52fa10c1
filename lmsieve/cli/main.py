"""The ``lmsieve`` command line.

Each subcommand lives in its own module under ``lmsieve/cli/`` and exposes
``add_parser(subparsers)``, which registers the command and sets ``func`` (called with the parsed
arguments; returns an exit code). Errors about input or configuration print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
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
    "lmsieve.cli.decontaminate_cmd",
    "lmsieve.cli.convert_cmd",
    "lmsieve.cli.methods_cmd",
]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (and exit 2), like every other lmsieve error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from lmsieve import __version__

    parser = _Parser(
        prog="lmsieve",
        description=(
            "Select training data that looks like a target. Score a pool of documents "
            "(Parquet, JSONL, CSV or a Hugging Face datasets directory; 'id' and 'text' columns or "
            "--text-column/--id-column) against target examples, keep the best, and write the selection "
            "with a manifest. Start with `lmsieve demo`; `lmsieve methods` lists the methods."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lmsieve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each step's time and throughput (and other details) to stderr")
    parser.add_argument("--log-file", metavar="FILE",
                        help="also keep progress, timings and warnings in FILE (select, run and eval keep "
                             "them in OUT/lmsieve.log as well)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lmsieve import progress
    from lmsieve.warnings_filter import silence_library_noise

    silence_library_noise()
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    was_enabled = progress.enabled_default()
    progress.setup_logging(args.verbose, args.log_file)
    progress.configure(enabled=not getattr(args, "no_progress", False))
    try:
        return int(args.func(args) or 0)
    except LmsieveError as exc:
        print(f"lmsieve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"lmsieve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:  # main() may run inside another program (tests): leave its logging as it was
        progress.configure(enabled=was_enabled)
        progress.teardown_logging()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
