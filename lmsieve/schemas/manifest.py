"""The run manifest and the score table schema.

``manifest.json`` is a run's commit marker (written last) and its provenance: what ran, with what
parameters and seed, on which inputs (path, rows, bytes, sha256), and the counts, which add up:
``input = selected + rejected + invalid``. It holds no timestamps, so a rerun of the same
configuration on the same inputs writes the same bytes.
"""
from __future__ import annotations

import platform
from collections import Counter

import numpy as np
import pyarrow as pa

#: ``lmsieve score`` output and ``scores.parquet`` of a selection run.
SCORES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("eligible", pa.bool_()),
    ]
)
MANIFEST_VERSION = 1


def domain_counts(domains, index: np.ndarray | None = None) -> dict[str, int]:
    vals = np.asarray(domains, dtype=object)
    if index is not None:
        vals = vals[index]
    c = Counter("<none>" if v is None else v for v in vals.tolist())
    return dict(sorted(c.items()))


def build_manifest(
    *,
    command: str,
    method: str,
    params: dict,
    seed: int | None,
    selection: dict,
    inputs: dict[str, list[dict]],
    counts: dict,
    outputs: list[dict],
) -> dict:
    from lmsieve import __version__

    return {
        "manifest_version": MANIFEST_VERSION,
        "lmsieve_version": __version__,
        "command": command,
        "method": method,
        "params": params,
        "seed": seed,
        "selection": selection,
        "inputs": inputs,
        "counts": counts,
        "outputs": outputs,
        "environment": {"python": platform.python_version(), "pyarrow": pa.__version__, "numpy": np.__version__},
    }
