"""Model features per work unit: read a unit, run it through RunInference, write it, assemble shards.

The element is a unit (a row-group range of one shard, :class:`lmsieve.pipelines.fileio.Unit`):

1. :class:`ReadUnitTexts`: the unit's ids and valid texts (:class:`UnitInput`), nothing else;
2. :class:`lmsieve.pipelines.inference.RunUnitInference`: sorted and batched by a token budget
   inside the unit, one :class:`UnitOutput` per unit;
3. :class:`WriteUnit`: the unit's rows (id + feature columns, one row group) to
   ``<features>/_units/<shard>.<feature>/<unit>-<key>.parquet`` under a temporary name, renamed when
   whole. ``key`` hashes the feature's fingerprint, the input's content fingerprint and the unit's
   layout, so a unit file is reused only for the same model, parameters and input;
4. :class:`AssembleShard` (per shard, after its units): the unit files become the shard's side
   file (one row group per unit, the layout every side file has), then are deleted.

Peak memory is one unit's texts and outputs (not a bundle, not a shard). A job that dies keeps
the unit files it wrote; the rerun plans only the missing units (one listing of ``_units``) and
assembles.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import apache_beam as beam
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import side_file
from lmsieve.pipelines.metrics import Progress, counter
from lmsieve.schemas.document import ID, TEXT

UNITS_DIR = "_units"


@dataclass(frozen=True)
class ModelUnitTask:
    """One unit of one shard for one model feature."""

    shard: object  # features_job.Shard
    unit: fileio.Unit
    features_dir: str
    feature: str
    unit_file: str


@dataclass(frozen=True)
class AssembleTask:
    shard: object
    features_dir: str
    feature: str
    unit_files: tuple[str, ...]


def unit_key(fp: str, shard, unit: fileio.Unit) -> str:
    return hashlib.sha256(f"{fp}:{shard.fingerprint}:{unit.to_list()}".encode()).hexdigest()[:16]


def unit_dir(features_dir: str, shard_name: str, feature: str) -> str:
    return fileio.join(features_dir, UNITS_DIR, f"{shard_name}.{feature}")


def plan_model_units(shards: list, pending: list, features_dir: str, feature: str, fp: str):
    """(unit tasks still to compute, assemble tasks) for the shards whose side file is not complete;
    unit files already written by an earlier (killed) run are kept."""
    have = set()
    if pending:
        have = set(fileio.list_files(fileio.join(features_dir, UNITS_DIR), f"*.{feature}/*.parquet"))
    tasks, assemble = [], []
    for s in pending:
        d = unit_dir(features_dir, s.name, feature)
        files = tuple(fileio.join(d, f"{u.index:05d}-{unit_key(fp, s, u)}.parquet") for u in s.units)
        assemble.append(AssembleTask(s, features_dir, feature, files))
        tasks.extend(ModelUnitTask(s, u, features_dir, feature, f) for u, f in zip(s.units, files) if f not in have)
    return tasks, assemble


class ReadUnitTexts(beam.DoFn):
    """A unit task -> :class:`UnitInput` (ids of all rows, the valid rows' texts)."""

    def process(self, task: ModelUnitTask):
        from lmsieve.pipelines.features import validate_rows
        from lmsieve.pipelines.features_job import safe_ids
        from lmsieve.pipelines.inference import UnitInput

        shard, unit = task.shard, task.unit
        with fileio.open_read(shard.path) as fh:
            table = fileio.read_unit(pq.ParquetFile(fh), unit, [ID, TEXT], shard.path)
        valid, _ = validate_rows(table)
        texts = table.column(TEXT).combine_chunks()
        if not valid.all():
            texts = texts.filter(pa.array(valid))
        yield UnitInput(task, safe_ids(table), valid, texts.to_pylist())


class WriteUnit(beam.DoFn):
    """A :class:`UnitOutput` -> its unit file (atomic); yields ``(shard index, unit index)``."""

    def __init__(self, name: str, fields: list[pa.Field], fp: str, progress_secs: float = 10.0):
        self.name, self.fields, self.fp, self.progress_secs = name, fields, fp, progress_secs

    def setup(self):
        self.progress = Progress(f"features:{self.name}", self.progress_secs)
        self.c_docs = counter(f"docs_inferred.{self.name}")
        self.c_units = counter(f"units_computed.{self.name}")

    def teardown(self):
        if getattr(self, "progress", None) is not None:
            self.progress.print(final=True)

    def process(self, out):
        from lmsieve.pipelines.inference import values_to_arrow

        task: ModelUnitTask = out.task
        n = len(out.valid)
        rows = np.full(n, -1, dtype=np.int64)
        rows[out.valid] = np.arange(int(out.valid.sum()))
        schema = pa.schema([pa.field(ID, pa.string())] + self.fields)
        arrays = [out.ids]
        for f in self.fields:
            v = out.values.get(f.name)
            arrays.append(values_to_arrow([None if r < 0 or v is None else v[r] for r in rows.tolist()], f))
        w = fileio.AtomicParquetWriter(task.unit_file, schema)
        try:
            w.write_row_group(pa.Table.from_arrays(arrays, schema=schema))
            w.commit({"fingerprint": self.fp, "unit": task.unit.to_list(), "computed": int(out.valid.sum())})
        except BaseException:
            w.abort()
            raise
        self.c_docs.inc(int(out.valid.sum()))
        self.c_units.inc()
        self.progress.tick(n, task.shard.name)
        yield task.shard.index, task.unit.index


class AssembleShard(beam.DoFn):
    """All unit files of a shard -> its side file (one row group per unit), then delete them."""

    def __init__(self, name: str, fields: list[pa.Field], fp: str, params: dict):
        self.name, self.fields, self.fp, self.params = name, fields, fp, params

    def setup(self):
        self.c_shards = counter(f"shards_computed.{self.name}")

    def process(self, element):
        from lmsieve.pipelines.features_job import META_KEY, side_meta

        _, grouped = element
        for task in grouped["task"]:
            missing = [f for f in task.unit_files if not fileio.exists(f)]
            if missing:
                raise RuntimeError(f"{task.shard.name}: {len(missing)} unit file(s) of {self.name} missing: "
                                   f"{missing[0]}")
            schema = pa.schema([pa.field(ID, pa.string())] + self.fields)
            w = fileio.AtomicParquetWriter(side_file(task.features_dir, task.shard.name, self.name), schema)
            stats = []
            try:
                for f in task.unit_files:
                    md = fileio.read_metadata(f)
                    meta = fileio.read_json_metadata(md) or {}
                    w.write_row_group(fileio.read_table(f))
                    stats.append({"computed": int(meta.get("computed", 0))})
                w.commit(side_meta(self.name, self.fp, self.params, task.shard, stats), META_KEY)
            except BaseException:
                w.abort()
                raise
            fileio.delete(list(task.unit_files))
            self.c_shards.inc()
            yield {"shard": task.shard.name, "rows": task.shard.rows, "features": [self.name]}


def _by_shard(t):
    return t.shard.index, t


def build_model_feature(p, name: str, handler, tasks_path: str, assemble_path: str, fail_on: str | None,
                        progress_secs: float):
    """Add one model feature's per-unit inference and shard assembly to ``p``."""
    from lmsieve.pipelines.features_job import FailOnShard, ReadTasks, distribute, unit_key
    from lmsieve.pipelines.inference import RunUnitInference

    fp = handler.fingerprint()
    written = (distribute(p | f"{name}Units" >> ReadTasks(tasks_path), f"{name}Spread", key=unit_key)
               | f"{name}FailHook" >> beam.ParDo(FailOnShard(fail_on))
               | f"{name}Read" >> beam.ParDo(ReadUnitTexts())
               | f"{name}Infer" >> RunUnitInference(handler, model_identifier=f"lmsieve-{name}")
               | f"{name}WriteUnit" >> beam.ParDo(WriteUnit(name, handler.fields(), fp, progress_secs)))
    assemble = p | f"{name}Shards" >> ReadTasks(assemble_path) | f"{name}KeyShards" >> beam.Map(_by_shard)
    return ({"task": assemble, "done": written}
            | f"{name}Join" >> beam.CoGroupByKey()
            | f"{name}Assemble" >> beam.ParDo(AssembleShard(name, handler.fields(), fp, handler.params())))


__all__ = ["AssembleShard", "ModelUnitTask", "ReadUnitTexts", "WriteUnit", "build_model_feature", "plan_model_units"]
