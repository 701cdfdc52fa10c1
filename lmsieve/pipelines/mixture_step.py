"""The ``[mixture]`` step of a job spec, in Beam: sample a data mixture from what the selection kept.

::

    [mixture]                 # after [selection]; the keys of `lmsieve mix`'s [mixture] except pool
    out = "out/mix"           # mixture-XXXXX-of-YYYYY.parquet (one per input shard) + manifest.json (last)
    weights = {code_python = 0.7, tech_docs = 0.3}
    budget = 2000000          # in `unit` (tokens = UTF-8 bytes, chars, docs)
    unit = "tokens"
    component_column = "domain"
    redistribute = true

The sample is the one :func:`lmsieve.mixtures.sampler.sample_mixture` draws (``lmsieve mix``, same
seed, same spec), computed without bringing the selection to one machine:

1. per unit of the input (``selection.out/selected-*.parquet``, or ``inputs.pool`` without a
   ``[selection]``): component, budget length, order key and tie hash of every document (the
   sampler's own ``_order_keys`` and ``stable_hash64``: they depend on (seed, id) only);
2. availability per component: a ``CombinePerKey`` sum; the quotas (the sampler's ``_quotas``,
   water-filling when ``redistribute``) in one step over that small dict;
3. each component keeps the shortest prefix of its order (key descending, hash ascending) whose
   length reaches its quota: the selection job's exact weighted cutoff
   (:class:`lmsieve.pipelines.global_select.GroupCutoffs`, one group per component, targets from
   step 2; quantiles, exact histogram, one band per component);
4. the chosen rows are read back per input shard by position (ids checked) and written as
   ``mixture-XXXXX-of-YYYYY.parquet`` in input order; renames in parallel; manifest last, with the
   per-component counts (documents, tokens, chars, quota, taken, available) as data (a combine).

Paths may be ``gs://`` (Beam's GCS filesystem from the gcp extra; gcsfs is not needed). Lengths
must be whole numbers (tokens, chars, docs, or an integer ``length_column``).
"""
from __future__ import annotations

import json
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import apache_beam as beam
from lmsieve.mixtures.spec import MixtureSpec, spec_from_dict
from lmsieve.pipelines import fileio
from lmsieve.schemas.errors import ConfigError, InputError

PREFIX = "mixture"


def validate_mixture(table, selection: dict | None, pool: list, src: str) -> dict:
    """The validated ``[mixture]`` table: ``out`` plus the sampler's spec (its ``pool`` is the selection output)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: mixture: expected a table")
    t = dict(table)
    out = t.pop("out", None)
    if not isinstance(out, str) or not out:
        raise ConfigError(f"{src}: mixture.out: required (a directory for the sampled mixture)")
    if "pool" in t:
        raise ConfigError(f"{src}: mixture.pool: not allowed in a job (the step reads the selection output, "
                          "or inputs.pool without a [selection])")
    source = [f"{selection['out'].rstrip('/')}/selected-*.parquet"] if selection else list(pool)
    try:
        spec = spec_from_dict({**t, "pool": source}, where="mixture")
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None
    return {"out": out, "spec": spec}


class MixUnit(beam.DoFn):
    """One unit of an input shard -> a ``Scored`` (group = component, weight = budget length)."""

    def __init__(self, spec: MixtureSpec):
        self.spec = spec

    def process(self, task):
        from lmsieve.mixtures.mixing import char_lengths, token_lengths, unit_lengths
        from lmsieve.mixtures.sampler import _order_keys
        from lmsieve.pipelines.global_select import Scored
        from lmsieve.sampling.hashing import stable_hash64

        shard, unit = task.shard, task.unit
        sp = self.spec
        cols = ["id", "text", sp.component_column] + [c for c in (sp.score_column, sp.length_column) if c]
        with fileio.open_read(shard.path) as fh:
            t = fileio.read_unit(pq.ParquetFile(fh), unit, cols, shard.path)
        n = t.num_rows
        for c in ["id", "text", sp.component_column] + [x for x in (sp.score_column, sp.length_column) if x]:
            if c not in t.column_names:
                raise InputError(f"missing column {c!r}", shard.path)
            if t.column(c).null_count:
                r = int(np.flatnonzero(t.column(c).is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError(f"null {c!r}", shard.path, unit.row_start + r)
        ids = t.column("id").combine_chunks().cast(pa.string())
        comp = np.asarray(t.column(sp.component_column).cast(pa.string()).to_pylist(), dtype=object)
        lens = unit_lengths(t, sp.unit, sp.length_column)
        if not np.all(lens == np.round(lens)):
            raise InputError(f"mixture lengths must be whole numbers in Beam ({sp.length_column!r})", shard.path,
                             unit.row_start + int(np.flatnonzero(lens != np.round(lens))[0]))
        scores = None
        if sp.score_column:
            scores = np.asarray(t.column(sp.score_column).to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = ~np.isfinite(scores)
            if bad.any():
                raise InputError(f"non-finite {sp.score_column!r}", shard.path, unit.row_start + int(np.flatnonzero(bad)[0]))
        key = np.asarray(_order_keys(ids, scores, sp.ranking, sp.temperature, sp.seed), dtype=np.float64)
        tb = stable_hash64(sp.seed, ids)
        text = t.column("text")
        yield Scored(shard.index, unit.index, unit.row_start, n, np.arange(n, dtype=np.int32), ids.to_pylist(),
                     key, np.ones(n, dtype=bool), key, tb, char_lengths(text).astype(np.int64),
                     lens.astype(np.int64), comp, comp, tokens=token_lengths(text).astype(np.int64))


def _avail(s):
    for c in sorted(set(s.group.tolist())):
        yield c, float(s.weight[s.group == c].sum())


def quotas(_, avail: dict, spec: MixtureSpec) -> dict:
    """Per-component weight targets: the sampler's quotas (minus its 1e-9 slack)."""
    from lmsieve.mixtures.sampler import _quotas

    wsum = float(sum(spec.weights.values()))
    weights = {str(k): float(v) / wsum for k, v in spec.weights.items()}
    q = _quotas(weights, float(spec.budget), avail, spec.redistribute)
    return {"targets": {c: v - 1e-9 for c, v in q.items()}, "quotas": q, "available": dict(avail)}


def _unit_counts(s) -> dict:
    out: dict = {}
    for c in set(s.group.tolist()):
        m = (s.group == c) & s.selected
        out[c] = np.array([int(m.sum()), int(s.tokens[m].sum()), int(s.chars[m].sum()), int(s.weight[m].sum())],
                          dtype=np.int64)
    return out


class ComponentCounts(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, c):
        return self.merge_accumulators([acc, c])

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            for k, v in a.items():
                out[k] = out[k] + v if k in out else v.copy()
        return out

    def extract_output(self, acc):
        return acc


def _manifest_counts(_, counts: dict, q: dict, n_in: int, spec: MixtureSpec) -> dict:
    comps = {}
    for c in sorted(set(spec.weights) | set(counts)):
        d, tok, ch, taken = (int(x) for x in counts.get(c, np.zeros(4, np.int64)))
        comps[c] = {"weight": spec.weights.get(c, 0.0), "docs": d, "tokens": tok, "chars": ch,
                    "quota": float(q["quotas"].get(c, 0.0)), "taken": float(taken),
                    "available": float(q["available"].get(c, 0.0))}
    return {"input": n_in, "selected": sum(v["docs"] for v in comps.values()),
            "tokens": sum(v["tokens"] for v in comps.values()), "chars": sum(v["chars"] for v in comps.values()),
            "components": comps}


def build_mixture_pipeline(p, spec: MixtureSpec, shards: list, out_dir: str, tmp_dir: str, base: dict,
                           dry: bool = False):
    from lmsieve.pipelines.features_job import ReadTasks, distribute, unit_key
    from lmsieve.pipelines.global_select import GroupCutoffs, WeightTarget
    from lmsieve.pipelines.model_units import ModelUnitTask
    from lmsieve.pipelines.selection_job import (ApplyCutoffs, Commit, OutShard, RenameOutput, WriteShardOutputs,
                                                 _by_shard)

    units = fileio.write_tasks(fileio.join(tmp_dir, "_tasks", "units.txt"),
                               [ModelUnitTask(s, u, "", PREFIX, "") for s in shards for u in s.units], dry)
    base_path = fileio.join(tmp_dir, "_tasks", "manifest-base.json")
    if not dry:
        fileio.write_text(base_path, json.dumps(base))
    scored = (distribute(p | "MixUnits" >> ReadTasks(units), "SpreadMix", key=unit_key)
              | "MixKeys" >> beam.ParDo(MixUnit(spec)))
    avail = scored | "Lengths" >> beam.FlatMap(_avail) | "Available" >> beam.CombinePerKey(sum)
    q = (p | "QuotaOnce" >> beam.Create([None])
         | "Quotas" >> beam.Map(quotas, beam.pvalue.AsDict(avail), spec))
    targets = q | "Targets" >> beam.Map(_targets)
    cutoffs = scored | "Cutoffs" >> GroupCutoffs({str(c): WeightTarget() for c in spec.weights}, exact=True,
                                                 max_num_elements=max(1000, sum(s.rows for s in shards)),
                                                 targets=targets)
    chosen = scored | "Select" >> beam.ParDo(ApplyCutoffs(), cutoffs=beam.pvalue.AsDict(cutoffs))
    counts = (chosen | "UnitCounts" >> beam.Map(_unit_counts) | "Counts" >> beam.CombineGlobally(ComponentCounts()))
    n_in = sum(s.rows for s in shards)
    manifest_counts = (p | "CountsOnce" >> beam.Create([None])
                       | "ManifestCounts" >> beam.Map(_manifest_counts, beam.pvalue.AsSingleton(counts),
                                                      beam.pvalue.AsSingleton(q), n_in, spec))
    n = len(shards)
    shards_path = fileio.write_tasks(fileio.join(tmp_dir, "_tasks", "shards.txt"),
                                     [(s.index, OutShard(s, n, tmp_dir, False, PREFIX)) for s in shards], dry)
    written = ({"shard": p | "OutShards" >> ReadTasks(shards_path),
                "scored": chosen | "ByShard" >> beam.Map(_by_shard)}
               | "JoinShard" >> beam.CoGroupByKey()
               | "Write" >> beam.ParDo(WriteShardOutputs()))
    moved = written | "SpreadRenames" >> beam.Reshuffle() | "Rename" >> beam.ParDo(RenameOutput(out_dir, tmp_dir))
    return (p | "CommitOnce" >> beam.Create([None])
            | "Commit" >> beam.ParDo(Commit(out_dir, tmp_dir, base_path, (f"{PREFIX}-*.parquet",)),
                                     outputs=beam.pvalue.AsList(moved),
                                     counts=beam.pvalue.AsSingleton(manifest_counts)))


def _targets(q: dict) -> dict:
    return q["targets"]


def run_mixture_step(mixture: dict, options=None) -> dict:
    """Sample the mixture into ``mixture['out']`` with Beam; returns its manifest."""
    from lmsieve.pipelines.features_job import plan_shards, waits
    from lmsieve.pipelines.options import make_options
    from lmsieve.pipelines.selection_job import MANIFEST, remove_killed_tmp
    from lmsieve.schemas.manifest import input_entry, mixture_manifest

    spec: MixtureSpec = mixture["spec"]
    out = mixture["out"]
    shards = plan_shards(list(spec.pool))
    fileio.makedirs(out)
    fileio.delete([fileio.join(out, MANIFEST)])
    remove_killed_tmp(out)
    tmp_dir = fileio.join(out, f".tmp-beam-{uuid.uuid4().hex[:12]}")
    fileio.makedirs(tmp_dir)
    base = mixture_manifest(params=spec.to_dict(), seed=spec.seed,
                            selection={"unit": spec.unit, "budget": spec.budget, "ranking": spec.ranking,
                                       "redistribute": spec.redistribute},
                            inputs={"pool": [input_entry(s.path, s.rows, s.bytes, None) for s in shards]},
                            counts={}, outputs=[],
                            runner={"engine": "apache-beam", "beam": beam.__version__,
                                    "pool_fingerprints": [s.fingerprint for s in shards]})
    opts = options if options is not None else make_options()
    p = beam.Pipeline(options=opts)
    build_mixture_pipeline(p, spec, shards, out, tmp_dir, base)
    result = p.run()
    if not waits(opts):
        return {"submitted": True, "out": out}
    result.wait_until_finish()
    return json.loads(fileio.read_text(fileio.join(out, MANIFEST)))


__all__ = ["build_mixture_pipeline", "run_mixture_step", "validate_mixture"]
