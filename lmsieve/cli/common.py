"""Arguments and output shared by the scoring and selection commands."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa

from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import available_methods


def add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=available_methods(),
                   help="selection method (dsir: hashed n-gram importance resampling; zipfit: gzip alignment)")
    p.add_argument("--target", required=True, nargs="+", metavar="T",
                   help="target examples: Parquet file(s), directory or glob with id/text columns")
    p.add_argument("--pool", required=True, nargs="+", metavar="P",
                   help="documents to score: Parquet file(s), directory or glob (local or gs://, s3://)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, repeatable; VALUE is JSON or a plain string "
                        "(e.g. --param num_buckets=20000 --param codec=lz4)")


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


def scores_table(ids, scores: np.ndarray, eligible: np.ndarray) -> pa.Table:
    from lmsieve.schemas.manifest import SCORES_SCHEMA

    return pa.table({"id": ids, "score": pa.array(scores, pa.float64()), "eligible": pa.array(eligible, pa.bool_())},
                    schema=SCORES_SCHEMA)
