"""The features job: document shards in, one keyed side file per (input shard, feature) out.

Plan (in the driver, from Parquet footers only): expand the pool, name the shards, coalesce each
shard's row groups into units, and for every feature check whether the shard's side file is
complete (same fingerprint, same input rows and bytes, same units: see
:mod:`lmsieve.pipelines.features`). Only what is missing is computed, so a rerun after a failure
resumes where it stopped: finished shards are not read again.

Pipeline:

* table features (``docs``, ``dsir_ngrams``, stored selector scores): shard tasks are spread over
  workers, and one fused DoFn reads a shard unit by unit (only the needed columns), validates
  the rows, computes every pending feature per Arrow table, and writes each side file (one row
  group per unit) under a temporary name renamed into place when the shard is done. A shard is
  the unit of resumption: shards committed before a failure stay committed.
* model features (``embeddings``, the LM features): per *unit*, see :mod:`lmsieve.pipelines.model_units`
  (read a unit, RunInference on it, write it; a shard's side file is assembled from its units): a
  failure resumes per unit.

The task lists travel as files in the job's temp location (:func:`fileio.write_tasks`), never inside
the job graph, so the graph has the same size for 10 or 10 million shards. An unreadable unit (a
corrupt data page behind an intact footer) stops the job naming the file and row groups, or, with
``on_invalid = "quarantine"``, becomes quarantine records (file, rows, reason) and the job finishes.
Resumption compares each input's content fingerprint (size, mtime/update time, footer hash).
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import apache_beam as beam
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import DOCS, DocsFeature, TableFeature, scatter, side_file, validate_rows
from lmsieve.pipelines.metrics import Progress, counter
from lmsieve.schemas.document import ID, TEXT, check_columns
from lmsieve.schemas.errors import InputError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, Quarantine, as_utf8_column, check_policy, invalid_utf8_rows

log = logging.getLogger(__name__)
META_KEY = "lmsieve.beam"


@dataclass(frozen=True)
class Shard:
    """One input file: its place in the sorted input list, name, size and unit layout."""

    index: int
    name: str
    path: str
    bytes: int
    rows: int
    units: tuple[fileio.Unit, ...]
    columns: tuple[str, ...] = ()
    fingerprint: str = ""  # fileio.content_fingerprint: size, mtime/update time, footer hash

    def to_input(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class ShardTask:
    shard: Shard
    features_dir: str
    pending: tuple[str, ...]


def plan_shards(pool, threads: int = 16, require_text: bool = True) -> list[Shard]:
    """Shards of the pool (sorted), read from footers in parallel."""
    paths = fileio.expand_inputs(pool, "pool")
    names = fileio.shard_names(paths)

    def one(i: int) -> Shard:
        p = paths[i]
        with fileio.open_read(p) as f:
            try:
                pf = pq.ParquetFile(f)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"not a readable Parquet file ({exc})", p) from None
            md, schema = pf.metadata, pf.schema_arrow
            fp = fileio.content_fingerprint(p, f)
        if require_text:
            check_columns(schema, p)
        return Shard(i, names[i], p, fileio.file_size(p), md.num_rows, tuple(fileio.plan_units(md)),
                     tuple(schema.names), fp)

    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as ex:
        return list(ex.map(one, range(len(paths))))


def side_meta(feature: str, fp: str, params: dict, shard: Shard, stats: list[dict]) -> dict:
    from lmsieve import __version__

    return {"feature": feature, "fingerprint": fp, "params": params, "shard": shard.name,
            "input": shard.to_input(), "units": [u.to_list() for u in shard.units], "stats": stats,
            "lmsieve_version": __version__}


def side_file_status(path: str, fp: str, shard: Shard) -> tuple[str, dict | None]:
    """("complete", meta) when the side file matches (fingerprint, input rows/bytes, units);
    otherwise ("missing" | "stale" | "unreadable", meta or None)."""
    if not fileio.exists(path):
        return "missing", None
    try:
        md = fileio.read_metadata(path)
    except InputError:
        return "unreadable", None
    meta = fileio.read_json_metadata(md, META_KEY)
    if meta is None:
        return "unreadable", None
    inp = meta.get("input", {})
    ok = (meta.get("fingerprint") == fp and inp.get("rows") == shard.rows and inp.get("bytes") == shard.bytes
          and inp.get("fingerprint", "") == shard.fingerprint
          and meta.get("units") == [u.to_list() for u in shard.units]
          and md.num_rows == shard.rows and md.num_row_groups == len(shard.units))
    return ("complete" if ok else "stale"), meta


# -- table features ---------------------------------------------------------------------------------
class FailOnShard(beam.DoFn):
    """Test hook: raise on one shard, or on one unit (``"SHARD:UNIT"``) of a model feature
    (simulates a worker dying in the middle of a job)."""

    def __init__(self, shard_name: str | None):
        self.shard_name = shard_name

    def process(self, task):
        name = task.shard.name
        unit = getattr(task, "unit", None)
        if self.shard_name is not None and (name == self.shard_name or
                                            unit is not None and f"{name}:{unit.index}" == self.shard_name):
            where = name if unit is None or ":" not in self.shard_name else f"{name} unit {unit.index}"
            raise RuntimeError(f"injected failure on shard {where}")
        yield task


def quarantine_file(features_dir: str, shard: str) -> str:
    """A shard's quarantined rows (``--on-invalid quarantine``; only written when there are some)."""
    return side_file(features_dir, shard, "quarantine")


def safe_ids(table: pa.Table) -> pa.Array:
    """The ``id`` column as strings; an id that is null or not UTF-8 becomes null (its row is invalid)."""
    if ID not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    ids = as_utf8_column(table.column(ID))
    bad = invalid_utf8_rows(ids)
    return pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), ids) if bad.any() else ids


class ComputeShardFeatures(beam.DoFn):
    """Read one shard unit by unit, compute every pending table feature, write its side files.

    Bad documents follow ``on_invalid`` (:mod:`lmsieve.schemas.quarantine`): "error" stops the job
    naming the shard file and row; "quarantine" marks them invalid in the ``docs`` side file, writes
    them to ``<shard>.quarantine.parquet`` and counts them per reason (footer and counters)."""

    def __init__(self, features: dict[str, TableFeature], progress_secs: float = 10.0, on_invalid: str = "error",
                 max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES):
        self.features = features
        self.progress_secs = progress_secs
        self.on_invalid, self.max_doc_bytes = on_invalid, max_doc_bytes

    def setup(self):
        for f in self.features.values():
            f.setup()
        self.progress = Progress("features", self.progress_secs)
        self.c_read = counter("docs_read")
        self.c_invalid = counter("docs_invalid")
        self.c_feat = counter("docs_featurized")
        self.c_shards = {n: counter(f"shards_computed.{n}") for n in self.features}

    def teardown(self):
        if getattr(self, "progress", None) is not None:
            self.progress.print(final=True)

    def process(self, task: ShardTask):
        shard = task.shard
        feats = [self.features[n] for n in task.pending]
        docs_feat = next((f for f in feats if f.name == DOCS), None)
        cols = list(dict.fromkeys(c for f in feats for c in f.input_columns))
        writers = {f.name: fileio.AtomicParquetWriter(side_file(task.features_dir, shard.name, f.name), f.schema())
                   for f in feats}
        stats: dict[str, list[dict]] = {f.name: [] for f in feats}
        invalid = 0
        q = Quarantine(self.on_invalid, self.max_doc_bytes)
        try:
            with fileio.open_read(shard.path) as fh:
                pf = pq.ParquetFile(fh)
                for unit in shard.units:
                    try:
                        table = fileio.read_unit(pf, unit, cols, shard.path)
                        valid = q.check(table, shard.path, row_offset=unit.row_start)
                    except fileio.UnreadableUnit as exc:
                        if self.on_invalid != "quarantine" or docs_feat is None:
                            raise
                        table, valid = quarantine_unit(q, shard.path, unit, exc)
                    n_bad = int((~valid).sum())
                    invalid += n_bad
                    ids = safe_ids(table)
                    sub = table if n_bad == 0 else table.filter(pa.array(valid))
                    for f in feats:
                        if f is docs_feat:
                            out = f.compute_all(table, valid)
                        else:
                            out = {k: scatter(v, valid) for k, v in f.compute(sub).items()} if sub.num_rows \
                                else {fl.name: pa.nulls(table.num_rows, fl.type) for fl in f.fields()}
                        arrays = [ids] + [out[fl.name] for fl in f.fields()]
                        writers[f.name].write_row_group(pa.Table.from_arrays(arrays, schema=f.schema()))
                        stats[f.name].append(f.unit_stats(out))
                    self.c_read.inc(table.num_rows)
                    self.c_invalid.inc(n_bad)
                    self.c_feat.inc(table.num_rows - n_bad)
                    self.progress.tick(table.num_rows, shard.name)
            if docs_feat is not None:
                write_quarantine(q, quarantine_file(task.features_dir, shard.name))
                for reason, k in q.counts().items():
                    counter(f"docs_quarantined.{reason}").inc(k)
            for f in feats:
                meta = side_meta(f.name, f.fingerprint(), f.params(), shard, stats[f.name])
                if f is docs_feat:
                    meta["quarantined"] = q.counts()
                writers[f.name].commit(meta, META_KEY)
        except BaseException:
            for w in writers.values():
                try:
                    w.abort()
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
            raise
        for n in task.pending:
            self.c_shards[n].inc()
        yield {"shard": shard.name, "rows": shard.rows, "invalid": invalid, "features": list(task.pending)}


def quarantine_unit(q: Quarantine, path: str, unit: fileio.Unit, exc: Exception) -> tuple[pa.Table, np.ndarray]:
    """Record every row of an unreadable unit as quarantined (file, row, reason) and stand in an
    all-invalid table for it (null ids), so the side files keep their one-row-group-per-unit layout."""
    n = unit.rows
    log.warning("quarantined %s: %s", path, exc)
    start = q.n_read
    q._sources.append((path, start - unit.row_start))
    q.n_read += n
    q._record(pa.nulls(n, pa.string()), path, np.arange(n), [fileio.UnreadableUnit.reason] * n, unit.row_start, start)
    q.kept_index_ = q.kept_index_  # nothing kept
    return pa.table({ID: pa.nulls(n, pa.string()), TEXT: pa.nulls(n, pa.string())}), np.zeros(n, dtype=bool)


def write_quarantine(q: Quarantine, path: str) -> None:
    """The shard's quarantined rows, or no file (a stale one from an earlier run is removed)."""
    if q.n:
        with fileio.open_write(path) as f:
            pq.write_table(q.table(), f, compression="zstd")
    elif fileio.exists(path):
        fileio.delete([path])


def _shard_key(t):
    return t.shard.index


def unit_key(t):
    """(shard, unit) of a unit task (a selection ``UnitTask`` or a ``ModelUnitTask``)."""
    return (t.shard, t.unit) if isinstance(t.shard, int) else (t.shard.index, t.unit.index)


def _keyed(t, key):
    return key(t), t


def _values(kv):
    return kv[1]


def distribute(pcoll, label: str, key=_shard_key):
    """Spread tasks over workers: a reshuffle on deterministic keys (shard index by default), so
    in-process runners keep the input order and distributed runners spread them by key.

    Functions handed to Beam here and in the other pipeline modules are module-level (pickled by
    reference), never lambdas or closures: those are pickled by value with their source file's
    path, a launcher path inside the job."""
    return (pcoll
            | f"{label}Key" >> beam.Map(_keyed, key)
            | f"{label}Group" >> beam.GroupByKey()
            | f"{label}Values" >> beam.FlatMap(_values))


class ReadTasks(beam.PTransform):
    """The tasks of a task-list file (:func:`fileio.write_tasks`): the graph holds the file's path
    only; the lines are read (and split) at run time."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, p):
        return (p | "ReadTaskLines" >> beam.io.ReadFromText(self.path, validate=False)
                | "DecodeTask" >> beam.Map(fileio.decode_task))


# -- the job ----------------------------------------------------------------------------------------
@dataclass
class FeaturesPlan:
    shards: list[Shard]
    features_dir: str
    table_features: dict[str, TableFeature]
    model_handlers: dict = field(default_factory=dict)
    table_tasks: list[ShardTask] = field(default_factory=list)
    model_tasks: dict[str, list] = field(default_factory=dict)  # name -> model_units.ModelUnitTask
    assemble_tasks: dict[str, list] = field(default_factory=dict)  # name -> model_units.AssembleTask
    skipped: dict[str, int] = field(default_factory=dict)

    def pending_side_files(self) -> list[str]:
        out = [side_file(self.features_dir, t.shard.name, n) for t in self.table_tasks for n in t.pending]
        out += [side_file(self.features_dir, t.shard.name, n) for n, ts in self.assemble_tasks.items() for t in ts]
        return out


def plan_features(pool, features_dir: str, table_features: list[TableFeature], model_handlers: list = (),
                  shards: list[Shard] | None = None, threads: int = 16) -> FeaturesPlan:
    """Which (shard, feature) side files are missing or stale (the rest is skipped); for model
    features, which units are still to compute."""
    from lmsieve.pipelines.model_units import plan_model_units

    shards = shards if shards is not None else plan_shards(pool, threads)
    feats = {DOCS: DocsFeature()}
    for f in table_features:
        feats[f.name] = f
    handlers = {h.name: h for h in model_handlers}
    fps = {n: f.fingerprint() for n, f in feats.items()}
    fps.update({n: h.fingerprint() for n, h in handlers.items()})
    names = list(feats) + list(handlers)
    checks = [(s, n) for s in shards for n in names]

    def status(sn):
        s, n = sn
        return side_file_status(side_file(features_dir, s.name, n), fps[n], s)[0] == "complete"

    with ThreadPoolExecutor(max(1, min(threads, len(checks) or 1))) as ex:
        done = dict(zip(checks, ex.map(status, checks)))
    plan = FeaturesPlan(shards, features_dir, feats, handlers)
    plan.skipped = {n: sum(done[(s, n)] for s in shards) for n in names}
    for s in shards:
        pending = tuple(n for n in feats if not done[(s, n)])
        if pending:
            plan.table_tasks.append(ShardTask(s, features_dir, pending))
    for n in handlers:
        todo = [s for s in shards if not done[(s, n)]]
        if todo:
            plan.model_tasks[n], plan.assemble_tasks[n] = plan_model_units(shards, todo, features_dir, n, fps[n])
    return plan


def build_features_pipeline(p: beam.Pipeline, plan: FeaturesPlan, progress_secs: float = 10.0,
                            fail_on_shard: str | None = None, on_invalid: str = "error",
                            max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, tmp_dir: str | None = None,
                            dry: bool = False):
    """Add the features job to ``p``; returns the PCollection of per-shard summaries. The task
    lists are written to ``tmp_dir`` (default: ``<features>/.lmsieve-tmp/<random>``) and read at run
    time, so the graph does not grow with the pool."""
    from lmsieve.pipelines.model_units import build_model_feature

    tmp_dir = tmp_dir or fileio.join(plan.features_dir, TMP_DIR, uuid.uuid4().hex[:12])
    outs = []
    if plan.table_tasks:
        path = fileio.write_tasks(fileio.join(tmp_dir, "table-tasks.txt"), plan.table_tasks, dry)
        outs.append(distribute(p | "TableTasks" >> ReadTasks(path), "SpreadShards")
                    | "InjectFailure" >> beam.ParDo(FailOnShard(fail_on_shard))
                    | "ComputeFeatures" >> beam.ParDo(ComputeShardFeatures(plan.table_features, progress_secs,
                                                                    on_invalid, max_doc_bytes)))
    for name, assemble in plan.assemble_tasks.items():
        units = fileio.write_tasks(fileio.join(tmp_dir, f"{name}-units.txt"), plan.model_tasks[name], dry)
        shards = fileio.write_tasks(fileio.join(tmp_dir, f"{name}-shards.txt"), assemble, dry)
        outs.append(build_model_feature(p, name, plan.model_handlers[name], units, shards, fail_on_shard,
                                        progress_secs))
    if not outs:
        return p | "NothingToDo" >> beam.Create([])
    return outs | "AllShards" >> beam.Flatten()


TMP_DIR = ".lmsieve-tmp"


def clean_stale_tmp(plan: FeaturesPlan) -> None:
    """Remove the temporary files a killed run left for the side files *this* run will write
    (``NAME.tmp-*`` of its pending side files and unit files); another job's files (other shards,
    other features, another features directory) are never touched."""
    from lmsieve.pipelines.model_units import UNITS_DIR

    stale = []
    for path in plan.pending_side_files():
        d, base = path.rsplit("/", 1) if "/" in path else (".", path)
        stale += fileio.list_files(d, f"{base}{fileio.TMP_MARK}*")
    for name, tasks in plan.assemble_tasks.items():
        if tasks:
            stale += [f for t in tasks for f in fileio.list_files(
                fileio.join(plan.features_dir, UNITS_DIR, f"{t.shard.name}.{name}"), f"*{fileio.TMP_MARK}*")]
    fileio.delete(stale)


def job_tmp_dir(opts, out_dir: str) -> str:
    """This run's own temp directory: under ``--temp_location`` when given, else under ``out_dir``."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    base = opts.view_as(GoogleCloudOptions).temp_location or fileio.join(out_dir, TMP_DIR)
    return fileio.join(base, f"lmsieve-{uuid.uuid4().hex[:12]}")


def waits(opts) -> bool:
    """False with ``--no_wait_until_finish`` (a Flex Template launcher must not block on the job)."""
    from apache_beam.options.pipeline_options import StandardOptions

    return not opts.view_as(StandardOptions).no_wait_until_finish


def finished(result) -> bool:
    """True when there is no job, or it is over (a failed local run raises before a result exists)."""
    from apache_beam.runners.runner import PipelineState

    if result is None:
        return True
    try:
        return PipelineState.is_terminal(result.state)
    except Exception:  # noqa: BLE001 - a runner without state
        return True


def remove_tree(d: str) -> None:
    if fileio.is_url(d):
        fileio.delete(fileio.list_files(d, "**"))
    else:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
        parent = d.rsplit("/", 1)[0]
        if parent.endswith(TMP_DIR):
            try:
                os.rmdir(parent)
            except OSError:
                pass


@dataclass
class FeaturesReport:
    shards: int
    computed: dict[str, int]
    skipped: dict[str, int]
    docs: int
    invalid: int
    seconds: float
    counters: dict = field(default_factory=dict)
    quarantined: dict = field(default_factory=dict)  # per reason, this run's computed shards

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def run_features_job(pool, features_dir: str, table_features: list[TableFeature], model_handlers: list = (),
                     options=None, progress_secs: float = 10.0, fail_on_shard: str | None = None,
                     shards: list[Shard] | None = None, on_invalid: str = "error",
                     max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES) -> FeaturesReport:
    """Compute the missing side files. ``on_invalid``: "error" (a bad document stops the job naming
    its file and row) or "quarantine" (see :class:`ComputeShardFeatures`)."""
    from lmsieve.pipelines.metrics import query_counters
    from lmsieve.pipelines.options import make_options

    t0 = time.perf_counter()
    fileio.makedirs(features_dir)
    plan = plan_features(pool, features_dir, table_features, model_handlers, shards=shards)
    clean_stale_tmp(plan)
    counters: dict = {}
    if plan.table_tasks or plan.assemble_tasks:
        opts = options if options is not None else make_options()
        p = beam.Pipeline(options=opts)
        tmp_dir = job_tmp_dir(opts, features_dir)
        result = None
        try:
            build_features_pipeline(p, plan, progress_secs, fail_on_shard, check_policy(on_invalid), max_doc_bytes,
                                    tmp_dir)
            result = p.run()
            if waits(opts):
                result.wait_until_finish()
        finally:
            if finished(result):  # a job still running on a service reads its task lists
                remove_tree(tmp_dir)
        counters = query_counters(result)
    computed = {n: int(counters.get(f"shards_computed.{n}", 0)) for n in plan.skipped}
    docs, invalid = int(counters.get("docs_read", 0)), int(counters.get("docs_invalid", 0))
    rep = FeaturesReport(len(plan.shards), computed, plan.skipped, docs, invalid, time.perf_counter() - t0, counters,
                         {k.split(".", 1)[1]: v for k, v in sorted(counters.items()) if k.startswith("docs_quarantined.")})
    if progress_secs > 0:
        dt = max(rep.seconds, 1e-9)
        print(f"lmsieve[features] {len(plan.shards)} shards: computed {computed}, skipped (complete) {plan.skipped}; "
              f"{docs:,} docs in {dt:.1f}s ({docs / dt:,.0f} docs/s)", flush=True)
    return rep


__all__ = ["FeaturesPlan", "FeaturesReport", "ReadTasks", "Shard", "ShardTask", "build_features_pipeline",
           "plan_features", "plan_shards", "run_features_job"]
