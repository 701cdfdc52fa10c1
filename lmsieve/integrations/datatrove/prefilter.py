"""Pre-selection with datatrove's own stages: heuristic quality filters and MinHash dedup.

Runs datatrove's ``ParquetReader`` over lmsieve Parquet shards, then any of its quality filters,
then optionally its four-stage MinHash near-duplicate removal, and writes
``prefiltered-XXXXX-of-YYYYY.parquet`` shards with exactly the input's columns -- a pool that
``lmsieve select`` or the Beam jobs read. Nothing here re-implements a filter:

* ``gopher``            -- ``GopherQualityFilter`` (Rae et al., *Scaling Language Models: Methods,
  Analysis & Insights from Training Gopher*, 2021, App. A);
* ``gopher_repetition`` -- ``GopherRepetitionFilter`` (same paper, repetition removal);
* ``c4``                -- ``C4QualityFilter`` (Raffel et al., *Exploring the Limits of Transfer
  Learning with a Unified Text-to-Text Transformer*, JMLR 2020); the bad-words filter
  (``C4BadWordsFilter``) downloads its list and is not offered;
* ``fineweb``           -- ``FineWebQualityFilter`` (Penedo et al., *The FineWeb Datasets*, 2024);
* MinHash               -- ``MinhashDedupSignature/Buckets/Cluster/Filter`` (Broder 1997; LSH with
  datatrove's defaults: 5-gram word shingles, 14 buckets × 8 hashes, as FineWeb).

Each filter runs with datatrove's defaults unless ``filter_params[name]`` overrides keyword
arguments. Word tokenization is spaCy's blank English model (no download).

Text is never changed unasked. Some datatrove filters edit the text they keep (``C4QualityFilter``
drops lines without terminal punctuation, citations, "javascript" lines...). By default a filter's
keep/drop decision applies but the kept document's text is restored byte for byte, and the manifest
counts how many kept documents a filter would have edited (``text_edits_undone``). With
``allow_text_edits=True`` (CLI ``--allow-text-edits``) the edits stay; the manifest counts the edited
documents and the characters removed per filter, and the original text is kept in the
``text_before_edit`` column (null for documents no filter edited).

Accounting (``manifest.json``, written last, so a directory with it is complete):
``input_rows = skipped_empty_text + Σ filter drops + minhash_removed + output_rows``. datatrove's
reader skips documents with empty text (with only a log warning); they are counted here.
Each stage's own datatrove ``stats.json`` is kept under ``datatrove_logs/<stage>/``.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field

import pyarrow.parquet as pq
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import get_filter_result
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.typeshelper import StatHints

from lmsieve.integrations.datatrove.documents import ColumnsAdapter, inspect_input
from lmsieve.io.output import RunOutput
from lmsieve.schemas.errors import ConfigError

ORIGINAL_TEXT = "text_before_edit"


class _TextGuard:
    """Mixin over a datatrove filter: undo (or count and keep) the edits it makes to kept text."""

    allow_text_edits = False

    def filter(self, doc):
        orig = doc.text
        res = super().filter(doc)
        if doc.text is not orig and doc.text != orig and get_filter_result(res)[0]:
            if self.allow_text_edits:
                self.stat_update("text_edited")
                self.stat_update("text_chars_removed", value=len(orig) - len(doc.text))
                doc.metadata.setdefault(ORIGINAL_TEXT, orig)  # the text before the first edit
            else:
                self.stat_update("text_edits_undone")
                doc.text = orig
        return res


class GopherQuality(_TextGuard, GopherQualityFilter):
    pass


class GopherRepetition(_TextGuard, GopherRepetitionFilter):
    pass


class C4Quality(_TextGuard, C4QualityFilter):
    pass


class FineWebQuality(_TextGuard, FineWebQualityFilter):
    pass


QUALITY_FILTERS = {
    "gopher": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4": C4Quality,
    "fineweb": FineWebQuality,
}
LOGS = "datatrove_logs"
SHARD_PREFIX = "prefiltered-"


@dataclass
class PrefilterReport:
    """What a prefilter run read, dropped (per stage and reason) and wrote."""

    input_rows: int
    read: int
    skipped_empty_text: int
    filters: list[str]
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # filter -> {reason: count}
    minhash_removed: int = 0
    output_rows: int = 0
    output_files: list[str] = field(default_factory=list)
    text_edits_allowed: bool = False
    #: filter -> kept documents whose text it edited (allowed) / would have edited (undone)
    text_edited: dict[str, int] = field(default_factory=dict)
    text_chars_removed: dict[str, int] = field(default_factory=dict)
    text_edits_undone: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": "lmsieve prefilter", **asdict(self)}


def make_filters(names, filter_params: dict | None = None, allow_text_edits: bool = False) -> list:
    """datatrove filter instances by name (``QUALITY_FILTERS``), with keyword overrides; text edits
    undone unless ``allow_text_edits``."""
    params = dict(filter_params or {})
    unknown = [n for n in list(names) + list(params) if n not in QUALITY_FILTERS]
    if unknown:
        raise ConfigError(f"unknown prefilter {unknown[0]!r}; available: {', '.join(QUALITY_FILTERS)}")
    out = []
    for n in names:
        try:
            out.append(QUALITY_FILTERS[n](**params.get(n, {})))
        except TypeError as exc:
            raise ConfigError(f"filter {n!r}: {exc}") from None
        out[-1].allow_text_edits = bool(allow_text_edits)
    return out


def _totals(stats, step) -> dict[str, int]:
    """{stat: total} of one step in an executor's merged PipelineStats."""
    for s in stats.stats:
        if s.name == str(step):
            return {k: int(v.total) for k, v in s.stats.items()}
    return {}


def _run(pipeline, tasks: int, workers: int, logs: str):
    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=logs,
                                 skip_completed=False).run()


def run_prefilter(input, out: str, filters=("gopher", "c4", "fineweb"), filter_params: dict | None = None,
                  minhash: bool = False, minhash_params: dict | None = None, tasks: int = 1,
                  workers: int = 1, allow_text_edits: bool = False) -> PrefilterReport:
    """Filter (and dedup) the Parquet shards ``input`` into the local directory ``out``.

    ``tasks``: datatrove tasks (files are dealt round-robin to tasks); ``workers``: processes.
    ``minhash_params``: ``MinhashConfig`` fields (``n_grams``, ``num_buckets``,
    ``hashes_per_bucket``, ``seed``). ``allow_text_edits``: keep the text edits filters make (see
    the module doc; default: kept documents' text is byte-identical to the input).
    """
    filters = list(dict.fromkeys(filters))
    steps = make_filters(filters, filter_params, allow_text_edits)
    if not steps and not minhash:
        raise ConfigError("nothing to do: name at least one filter or ask for minhash")
    if tasks < 1 or workers < 1:
        raise ConfigError("tasks and workers must be >= 1")
    try:
        mh_config = MinhashConfig(**(minhash_params or {}))
    except TypeError as exc:
        raise ConfigError(f"minhash: {exc}") from None
    inp = inspect_input(input)
    out = os.path.abspath(os.fspath(out))
    logs = os.path.join(out, LOGS)
    with RunOutput(out) as run:
        shutil.rmtree(logs, ignore_errors=True)
        work = os.path.join(run.tmp, "work")
        os.makedirs(work)
        schema = inp.schema
        if allow_text_edits and ORIGINAL_TEXT not in schema.names:
            import pyarrow as pa

            schema = schema.append(pa.field(ORIGINAL_TEXT, pa.string()))
        columns = tuple(schema.names)

        def reader(folder, paths_file=None):
            return ParquetReader(folder, paths_file=paths_file, glob_pattern="*.parquet")

        def writer(folder):
            return ParquetWriter(folder, output_filename="${rank}.parquet", compression="zstd",
                                 adapter=ColumnsAdapter(columns), schema=schema)

        shards = os.path.join(run.tmp, "shards")
        first = reader(inp.folder, inp.write_paths_file(os.path.join(work, "paths.txt")))
        filtered = os.path.join(work, "filtered") if minhash else shards
        stats = _run([first, *steps, writer(filtered)], tasks, workers, os.path.join(logs, "filter"))
        read = _totals(stats, first).get("documents", 0)
        report = PrefilterReport(input_rows=inp.rows, read=read, skipped_empty_text=inp.rows - read, filters=filters,
                                 text_edits_allowed=bool(allow_text_edits))
        for name, step in zip(filters, steps):
            t = _totals(stats, step)
            reasons = {k.removeprefix("dropped_"): v for k, v in t.items() if k.startswith("dropped_")}
            if t.get(StatHints.dropped, 0) > sum(reasons.values()):  # a filter may drop without a reason
                reasons["unspecified"] = t[StatHints.dropped] - sum(reasons.values())
            report.dropped[name] = reasons
            for key in ("text_edited", "text_chars_removed", "text_edits_undone"):
                if key in t:
                    getattr(report, key)[name] = t[key]
        if minhash:
            report.minhash_removed = _minhash(filtered, shards, work, logs, mh_config, tasks, workers, reader, writer)
        names = sorted(os.listdir(shards)) if os.path.isdir(shards) else []
        if not names:  # nothing survived: still write one (empty) shard with the input's schema
            os.makedirs(shards, exist_ok=True)
            pq.write_table(schema.empty_table(), os.path.join(shards, "empty.parquet"))
            names = ["empty.parquet"]
        for old in os.listdir(out):
            if old.startswith(SHARD_PREFIX) and old.endswith(".parquet"):
                os.remove(os.path.join(out, old))
        for i, name in enumerate(names):
            final = f"{SHARD_PREFIX}{i:05d}-of-{len(names):05d}.parquet"
            dest = run.path(final)
            os.replace(os.path.join(shards, name), dest)
            report.output_rows += pq.ParquetFile(dest).metadata.num_rows
            report.output_files.append(final)
        shutil.rmtree(work, ignore_errors=True)
        run.commit(report.to_dict())
    return report


def _minhash(filtered: str, shards: str, work: str, logs: str, config: MinhashConfig, tasks: int, workers: int,
             reader, writer) -> int:
    """datatrove's four MinHash stages over ``filtered``; writes the survivors to ``shards``."""
    if not os.path.isdir(filtered):
        return 0
    sigs, buckets, remove = (os.path.join(work, d) for d in ("sigs", "buckets", "remove"))
    _run([reader(filtered), MinhashDedupSignature(sigs, config=config)], tasks, workers,
         os.path.join(logs, "minhash_1_signatures"))
    _run([MinhashDedupBuckets(sigs, buckets, config=config)], config.num_buckets, workers,
         os.path.join(logs, "minhash_2_buckets"))
    _run([MinhashDedupCluster(buckets, remove, config=config)], 1, 1, os.path.join(logs, "minhash_3_clusters"))
    dedup = MinhashDedupFilter(remove)
    stats = _run([reader(filtered), dedup, writer(shards)], tasks, workers, os.path.join(logs, "minhash_4_filter"))
    return _totals(stats, dedup).get(StatHints.dropped, 0)
