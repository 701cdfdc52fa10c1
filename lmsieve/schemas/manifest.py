"""The run manifest and the score table schema.

``manifest.json`` is a run's commit marker (written last) and its provenance: what ran, with what
parameters and seed, on which inputs (path, rows, bytes, sha256), and the counts, which add up:
``input = selected + rejected + invalid``. It holds no timestamps, so a rerun of the same
configuration on the same inputs writes the same bytes.

A selection's manifest has one builder, :func:`selection_manifest`, for the in-process run
(:mod:`lmsieve.selection.run`: the API and ``lmsieve select``) and the Beam selection job: the
same keys and the same counts for the same selection; what only one runner has (Beam's features
directory, quantile settings, input fingerprints) goes in ``runner``.
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
#: Per-domain counts use this name for documents without a domain (or a pool without the column).
NONE_DOMAIN = "<none>"


def domain_counts(domains, index: np.ndarray | None = None) -> dict[str, int]:
    vals = np.asarray(domains, dtype=object)
    if index is not None:
        vals = vals[index]
    c = Counter(NONE_DOMAIN if v is None else v for v in vals.tolist())
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


def scores_table(ids, scores: np.ndarray, eligible: np.ndarray) -> pa.Table:
    """``id, score, eligible`` (:data:`SCORES_SCHEMA`): ``lmsieve score``'s file, the start of ``scores.parquet``."""
    return pa.table({"id": ids, "score": pa.array(scores, pa.float64()), "eligible": pa.array(eligible, pa.bool_())},
                    schema=SCORES_SCHEMA)


def input_entry(path: str, rows: int | None, size: int | None, sha256: str | None) -> dict:
    """One input file of ``inputs`` (sha256 None where the runner does not read whole files)."""
    return {"path": path, "rows": rows, "bytes": size, "sha256": sha256}


def selection_counts(*, n_input: int, n_selected: int, quarantined: dict[str, int], ineligible: int,
                     chars_input: int, chars_selected: int, domains_input: dict[str, int],
                     domains_selected: dict[str, int]) -> dict:
    """A selection's ``counts``: ``input = selected + rejected + quarantined``, documents not
    eligible for the method, characters, and documents per domain (``<none>`` without one)."""
    from lmsieve.schemas.quarantine import manifest_counts

    return {**manifest_counts(n_input, n_selected, quarantined), "ineligible": int(ineligible),
            "characters": {"input": int(chars_input), "selected": int(chars_selected)},
            "per_domain": {"input": dict(sorted(domains_input.items())),
                           "selected": dict(sorted((k, v) for k, v in domains_selected.items() if v))}}


def selection_manifest(*, method: str, params: dict, seed: int, budget: dict, ranking: str, temperature: float,
                       inputs: dict[str, list[dict]], counts: dict, outputs: list[dict], runner: dict,
                       quotas: dict | None = None) -> dict:
    """The manifest of a selection, whichever runner made it (``runner``: ``{"engine": ...}`` and
    that runner's own settings)."""
    selection = {"budget": budget, "ranking": ranking, "temperature": float(temperature)}
    if quotas is not None:
        selection["quotas"] = quotas
    m = build_manifest(command="select", method=method, params=params, seed=seed, selection=selection,
                       inputs=inputs, counts=counts, outputs=outputs)
    m["runner"] = runner
    return m


def mixture_manifest(*, params: dict, seed: int, selection: dict, inputs: dict[str, list[dict]], counts: dict,
                     outputs: list[dict], runner: dict) -> dict:
    """The manifest of a sampled mixture (``lmsieve mix`` in-process, or the Beam ``[mixture]`` step)."""
    m = build_manifest(command="mix", method="mixture", params=params, seed=seed, selection=selection,
                       inputs=inputs, counts=counts, outputs=outputs)
    m["runner"] = runner
    return m
