"""``lmsieve mix`` / ``lmsieve.mixtures.mix``: sample a mixture from a pool into a directory (Parquet + manifest.json).

The pool is read and validated like every lmsieve input (errors name the file and row); the
component, score and length columns are checked here (a null component or a non-finite score is an
error naming the row). The sample comes from :func:`lmsieve.mixtures.sampler.sample_mixture`, so it
depends only on (seed, ids, scores, lengths). The output is written atomically through
:class:`lmsieve.io.output.RunOutput`: ``mixture-00000-of-00001.parquet`` (the chosen rows, all
columns, input order) and ``manifest.json`` last, with per-component documents, tokens (UTF-8
bytes), characters, quota and availability.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.mixtures.sampler import sample_mixture
from lmsieve.mixtures.spec import MixtureSpec
from lmsieve.schemas.errors import ConfigError, InputError

SHARD = "mixture-00000-of-00001.parquet"


def resolve_pool(paths) -> list[str]:
    """``sample:NAME`` -> the bundled sample file; other paths unchanged."""
    from lmsieve.data import sample_path

    return [sample_path(p.split(":", 1)[1]) if p.startswith("sample:") else p for p in paths]


def token_lengths(texts) -> np.ndarray:
    """Byte-tokenizer tokens per document (UTF-8 bytes)."""
    return pc.binary_length(pc.cast(texts, pa.binary())).to_numpy(zero_copy_only=False).astype(np.float64)


def char_lengths(texts) -> np.ndarray:
    return pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.float64)


def unit_lengths(table: pa.Table, unit: str, length_column: str | None = None) -> np.ndarray:
    if length_column:
        v = _numeric(table, length_column)
        if np.any(v < 0):
            raise InputError(f"negative length in column {length_column!r}", "pool", int(np.flatnonzero(v < 0)[0]))
        return v
    if unit == "docs":
        return np.ones(table.num_rows)
    return token_lengths(table.column("text")) if unit == "tokens" else char_lengths(table.column("text"))


def _column(table: pa.Table, col: str, what: str = "column") -> pa.ChunkedArray:
    """The column, or an error naming it (missing) or its first null row."""
    if col not in table.column_names:
        raise InputError(f"missing {what} {col!r}", "pool")
    v = table.column(col)
    if v.null_count:
        raise InputError(f"null {col!r}", "pool", int(np.flatnonzero(v.is_null().to_numpy(zero_copy_only=False))[0]))
    return v


def _numeric(table: pa.Table, col: str) -> np.ndarray:
    v = _column(table, col)
    try:
        a = np.asarray(v.to_numpy(zero_copy_only=False), dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"column {col!r} must be numeric, got {v.type}", "pool") from None
    if not np.all(np.isfinite(a)):
        raise InputError(f"non-finite {col!r}", "pool", int(np.flatnonzero(~np.isfinite(a))[0]))
    return a


def components_of(table: pa.Table, col: str) -> pa.ChunkedArray:
    return pc.cast(_column(table, col, "component column (mixture.component_column)"), pa.string())


def natural_mixture(table: pa.Table, components, col: str = "domain", unit: str = "tokens") -> dict:
    """Each component's share of the pool (in ``unit``), over ``components``."""
    comp = np.asarray(components_of(table, col).to_pylist(), dtype=object)
    lens = unit_lengths(table, unit)
    tot = {c: float(lens[comp == c].sum()) for c in components}
    s = sum(tot.values())
    return {c: (v / s if s > 0 else 0.0) for c, v in tot.items()}


def sample_table(table: pa.Table, spec: MixtureSpec):
    """(sampled rows in input order, MixtureSample) for an in-memory pool."""
    comp = components_of(table, spec.component_column)
    lens = unit_lengths(table, spec.unit, spec.length_column)
    scores = _numeric(table, spec.score_column) if spec.score_column else None
    s = sample_mixture(table.column("id"), comp, lens, spec.weights, spec.budget, scores=scores,
                       ranking=spec.ranking, temperature=spec.temperature, seed=spec.seed,
                       redistribute=spec.redistribute)
    return table.take(pa.array(s.indices, pa.int64())), s


def component_stats(rows: pa.Table, spec: MixtureSpec, sample) -> dict:
    comp = np.asarray(components_of(rows, spec.component_column).to_pylist(), dtype=object)
    toks, chars = token_lengths(rows.column("text")), char_lengths(rows.column("text"))
    out = {}
    for c in sorted(set(spec.weights) | set(sample.counts)):
        m = comp == c
        out[c] = {"weight": spec.weights.get(c, 0.0), "docs": int(m.sum()), "tokens": int(toks[m].sum()),
                  "chars": int(chars[m].sum()), "quota": float(sample.quotas.get(c, 0.0)),
                  "taken": float(sample.taken.get(c, 0.0)), "available": float(sample.available.get(c, 0.0))}
    return out


def mix(spec, out: str | None = None, pool=None, decontaminate=None) -> tuple[pa.Table, dict]:
    """Sample ``spec`` (a :class:`MixtureSpec` or a TOML path) from ``pool`` (default: ``spec.pool``:
    paths, or any table :func:`lmsieve.io.inputs.load_docs` reads); write it to ``out`` if given.
    ``decontaminate``: a :class:`lmsieve.features.decontam.apply.Decontaminator`, an index or
    evaluation files (remove mode: contaminated documents leave the pool before sampling).

    Returns (sampled table, manifest dict)."""
    if not isinstance(spec, MixtureSpec):
        from lmsieve.mixtures.spec import load_spec

        spec = load_spec(spec)
    from lmsieve.io.inputs import load_docs
    from lmsieve.io.output import RunOutput
    from lmsieve.io.parquet import write_table
    from lmsieve.schemas.manifest import mixture_manifest

    src = pool if pool is not None else spec.pool
    if src is None or (isinstance(src, (tuple, list)) and not src):
        raise ConfigError("mixture.pool: no pool given (set mixture.pool or pass pool=)")
    if isinstance(src, (tuple, list)) and all(isinstance(p, str) for p in src):
        from lmsieve.io.inputs import Paths

        src = Paths(resolve_pool(src))
    table, files = load_docs(src, name="pool", checksums=out is not None)
    n_input, decon, dflags = table.num_rows, None, None
    if decontaminate is not None:
        from lmsieve.features.decontam.apply import Decontaminator

        decon = decontaminate if isinstance(decontaminate, Decontaminator) else Decontaminator.from_spec(decontaminate)
        dflags, _ = decon.screen(table)
        if decon.mode == "remove":
            table = table.filter(pa.array(~dflags.flagged))
    rows, s = sample_table(table, spec)
    stats = component_stats(rows, spec, s)
    counts = {"input": n_input, "selected": rows.num_rows,
              "tokens": int(sum(v["tokens"] for v in stats.values())),
              "chars": int(sum(v["chars"] for v in stats.values())), "components": stats}
    if decon is not None:
        dc = decon.account({"rejected": 0}, dflags, rows.column("id").to_pylist())
        counts.update({k: v for k, v in dc.items() if k != "rejected"})
    manifest = mixture_manifest(params=spec.to_dict(), seed=spec.seed,
                                selection={"unit": spec.unit, "budget": spec.budget, "ranking": spec.ranking,
                                           "redistribute": spec.redistribute},
                                inputs={"pool": [f.to_dict() for f in files]}, counts=counts,
                                outputs=[{"path": SHARD, "rows": rows.num_rows}], runner={"engine": "in-process"})
    if out is not None:
        with RunOutput(out) as ro:
            write_table(rows, ro.path(SHARD))
            ro.commit(manifest)
    return rows, manifest
