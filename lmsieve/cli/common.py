"""Arguments and output shared by the scoring and selection commands."""
from __future__ import annotations

import argparse
import json

from lmsieve.io.paths import check_out  # noqa: F401  (re-exported for the commands)
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import available_methods


def add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=available_methods(), metavar="METHOD",
                   help="selection method: " + ", ".join(available_methods()) + " (`lmsieve methods` describes "
                        "each: paper, parameters, defaults, when to use it)")
    p.add_argument("--target", required=True, nargs="+", metavar="T",
                   help="target examples: file(s), directory or glob (" + INPUT_FORMATS + ")")
    p.add_argument("--pool", required=True, nargs="+", metavar="P",
                   help="documents to score: file(s), directory or glob, local or gs://, s3:// (" + INPUT_FORMATS + ")")
    add_column_args(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, repeatable; VALUE is JSON or a plain string "
                        "(e.g. --param num_buckets=20000 --param codec=lz4); `lmsieve methods METHOD` lists them")


INPUT_FORMATS = ("Parquet, JSONL/.jsonl.gz/.jsonl.zst incl. dolma and datatrove layouts, CSV/TSV, or a Hugging Face "
                 "datasets directory from save_to_disk")


def add_column_args(p: argparse.ArgumentParser, target: bool = True) -> None:
    """``--text-column`` / ``--id-column`` (and the target's, defaulting to the same)."""
    p.add_argument("--text-column", metavar="COL", default=None,
                   help="column holding the document text (default 'text')")
    p.add_argument("--id-column", metavar="COL", default=None,
                   help="column holding unique document ids (default 'id'; absent: ids are generated as "
                        "FILE_NAME:ROW, see docs/inputs.md); integer ids become their decimal text")
    if target:
        p.add_argument("--target-text-column", metavar="COL", default=None,
                       help="the target's text column (default: --text-column where the target has it, else 'text')")
        p.add_argument("--target-id-column", metavar="COL", default=None,
                       help="the target's id column (default: --id-column where the target has it, else 'id')")


def column_kw(args, target: bool = False) -> dict:
    """``text_column``/``id_column`` keywords for :func:`lmsieve.io.inputs.load_docs` from the args."""
    text, ident = getattr(args, "text_column", None), getattr(args, "id_column", None)
    if target:  # the target's own columns, else the pool's where the target has them, else the standard names
        text = getattr(args, "target_text_column", None) or (text and [text, "text"])
        ident = getattr(args, "target_id_column", None) or (ident and [ident, "id"])
    return {"text_column": text, "id_column": ident}


def add_invalid_args(p: argparse.ArgumentParser) -> None:
    """``--on-invalid`` and ``--max-doc-bytes`` (see :mod:`lmsieve.schemas.quarantine`)."""
    from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, POLICIES

    p.add_argument("--on-invalid", choices=POLICIES, default="error",
                   help="a bad document (null, non-UTF-8 or too large text, null or repeated id, non-finite "
                        "feature or score): 'error' stops naming its file and row (default); 'quarantine' "
                        "leaves it out, writes it with its reason to quarantine.parquet and counts it")
    p.add_argument("--max-doc-bytes", type=int, default=DEFAULT_MAX_DOC_BYTES, metavar="N",
                   help=f"texts over N bytes are bad documents (default {DEFAULT_MAX_DOC_BYTES:,}: 10 MiB)")


def parse_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def one_or_many(paths: list[str]):
    from lmsieve.io.inputs import Paths

    return Paths(paths)


def keep_log(out_dir: str, name: str = "lmsieve.log") -> None:
    """Also keep this run's progress lines, timings and warnings in ``OUT/lmsieve.log`` (local OUT)."""
    import os

    from lmsieve import progress

    from lmsieve.io.paths import is_remote

    if is_remote(out_dir):
        return
    progress.add_log_file(os.path.join(str(out_dir).removeprefix("file://"), name))
