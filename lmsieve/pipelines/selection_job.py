"""The selection job: stored features in, selected shards and a manifest out. Never reads ``text``
of the pool (only the side files' columns, then the selected rows' full records at the end).

Plan (driver, footers only): the pool's shards and units, and for each shard the side files the
method needs (``docs`` plus ``dsir_ngrams`` for DSIR, or ``<method>`` for a stored score), checked
complete against the expected fingerprints; a missing or stale one stops the job before it starts.

Pipeline:

1. DSIR only: fit the raw and target count vectors with numpy ``CombineGlobally``s (raw in input
   order up to the fit budget) and build the fitted selector (a singleton side input);
2. score every unit (``DSIR.score_counts`` from stored counts, bit-identical to the API, or the
   stored score), and compute ranking keys with the stable (seed, id) hash
   (:func:`lmsieve.sampling.ranking_keys`, the in-process function);
3. cutoffs per budget group (:mod:`lmsieve.pipelines.global_select`) and the filter;
4. per input shard: the selected rows, read back from the documents by position (ids verified),
   written as ``selected-XXXXX-of-YYYYY.parquet`` (all input columns, input order, coalesced row
   groups), and ``scores-XXXXX-of-YYYYY.parquet`` (id, score, eligible, selected);
5. a last step renames the files into the output directory and writes ``manifest.json`` last.
   Its counts are data (a combine over the units), so they add up:
   ``input = selected + rejected + invalid``.
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import apache_beam as beam
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import (DOCS, ELIGIBLE, N_CHARS, NGRAMS, SCORE, VALID, DocsFeature, NgramFeature,
                                        hash_target_files, selector_class, side_file)
from lmsieve.pipelines.features_job import Shard, distribute, plan_shards, side_file_status
from lmsieve.pipelines.global_select import Cutoff, GroupCutoffs, Scored
from lmsieve.pipelines.metrics import Progress, counter
from lmsieve.pipelines.round_robin import QueryRoundRobin, is_round_robin, stored_feature
from lmsieve.sampling.select import RANKINGS, Budget
from lmsieve.schemas.document import DOMAIN, ID
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.schemas.manifest import NONE_DOMAIN, selection_counts
from lmsieve.schemas.quarantine import NONFINITE_SCORE, QUARANTINE_FILE, check_policy

MANIFEST = "manifest.json"
UNRECORDED = "invalid (reason not recorded)"


@dataclass
class SelectionConfig:
    """What to select (the ``[selection]`` table of a job spec, validated)."""

    method: str
    params: dict = field(default_factory=dict)
    budget: Budget | None = None
    quotas: dict[str, Budget] | None = None
    seed: int = 0
    ranking: str | None = None
    temperature: float | None = None  # None: the method's default_temperature (MATES 0.5, else 1)
    exact: bool = True
    num_quantiles: int = 1001
    epsilon: float = 1e-3
    write_scores: bool = True
    on_invalid: str = "error"  # a non-finite stored score: stop naming the side file and row, or quarantine
    decontam: object = None  # [decontaminate]: a lmsieve.pipelines.decontam_step.DecontamFeature

    def budgets(self) -> dict:
        return dict(self.quotas) if self.quotas is not None else {"": self.budget}

    def to_dict(self) -> dict:
        d = {"budget": self.budget.to_dict() if self.budget else None, "ranking": self.ranking,
             "temperature": self.temperature, "exact": self.exact, "num_quantiles": self.num_quantiles,
             "epsilon": self.epsilon}
        if self.quotas is not None:
            d["quotas"] = {g: b.to_dict() for g, b in sorted(self.quotas.items())}
        return d


@dataclass(frozen=True)
class UnitTask:
    shard: int
    unit: int
    row_start: int
    row_stop: int
    files: dict
    already: int = 0
    row0: int = 0  # pool-wide row of the unit's first row (input order)


@dataclass(frozen=True)
class OutShard:
    shard: Shard
    n_shards: int
    tmp_dir: str
    write_scores: bool
    prefix: str = "selected"

    @property
    def selected_name(self) -> str:
        return f"{self.prefix}-{self.shard.index:05d}-of-{self.n_shards:05d}.parquet"

    @property
    def scores_name(self) -> str:
        return f"scores-{self.shard.index:05d}-of-{self.n_shards:05d}.parquet"


@dataclass
class SelectionPlan:
    shards: list[Shard]
    units: list[UnitTask]
    fit_units: list[UnitTask]
    selector: object
    families: tuple[str, ...]
    target_paths: list[str]
    n_rows: int
    quarantined: dict = field(default_factory=dict)  # per reason, from the docs side files' footers


# -- plan -------------------------------------------------------------------------------------------
def make_selector(cfg: SelectionConfig):
    cls = selector_class(cfg.method)
    try:
        return cls(**cfg.params)
    except TypeError as exc:
        raise ConfigError(f"selection.params: {exc}") from None


def plan_selection(pool, features_dir: str, target, cfg: SelectionConfig, shards: list[Shard] | None = None,
                   threads: int = 16) -> SelectionPlan:
    sel = make_selector(cfg)
    check_policy(cfg.on_invalid)
    if cfg.ranking is not None and cfg.ranking not in RANKINGS:
        raise ConfigError(f"selection.ranking: must be one of {RANKINGS}, got {cfg.ranking!r}")
    if getattr(sel, "_params", {}).get("separate_targets"):
        raise ConfigError("selection.params.separate_targets: not supported by the Beam selection job "
                          "(use the in-process API for per-target quotas)")
    target_paths = fileio.expand_inputs(target, "target") if target else []
    shards = shards if shards is not None else plan_shards(pool, threads)
    fps = {DOCS: DocsFeature().fingerprint()}
    if cfg.method == "dsir" and hasattr(sel, "score_counts"):  # window mode: a stored score, as ZIP-FIT's
        if not target_paths:
            raise ConfigError("inputs.target: DSIR needs a target set")
        fam = NGRAMS
        fps[NGRAMS] = NgramFeature(sel.featurizer.num_buckets, sel.featurizer.ngrams).fingerprint()
    elif sel.needs_pool_sample:
        raise ConfigError(f"selection.method: {cfg.method!r} needs pool statistics and has no Beam path yet")
    else:
        fam = cfg.method
        fps[fam] = stored_feature(sel, hash_target_files(target_paths) if target_paths else "").fingerprint()
    families = (DOCS, fam)
    if cfg.decontam is not None:  # the flag column of the features job (lmsieve.pipelines.decontam_step)
        fps[cfg.decontam.name] = cfg.decontam.fingerprint()
        families += (cfg.decontam.name,)
    checks = [(s, f) for s in shards for f in families]

    def status(sf):
        s, f = sf
        return side_file_status(side_file(features_dir, s.name, f), fps[f], s)

    with ThreadPoolExecutor(max(1, min(threads, len(checks)))) as ex:
        res = dict(zip(checks, ex.map(status, checks)))
    bad = [(s, f, st) for (s, f), (st, _) in res.items() if st != "complete"]
    if bad:
        s, f, st = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ConfigError(f"features.out: the {f!r} side file of shard {s.name!r} is {st}{more}: "
                          f"{side_file(features_dir, s.name, f)}; run the features job first "
                          f"(lmsieve run JOB.toml --lmsieve_stage features)")
    units, fit_units = [], []
    already = 0
    row0 = 0
    budget = sel.fit_budget if fam == NGRAMS else None
    for s in shards:
        files = {f: side_file(features_dir, s.name, f) for f in families}
        n_feat = res[(s, fam)][1]["stats"] if fam == NGRAMS else [{}] * len(s.units)
        for u, st in zip(s.units, n_feat):
            t = UnitTask(s.index, u.index, u.row_start, u.row_stop, files, already, row0 + u.row_start)
            units.append(t)
            if fam == NGRAMS and (budget is None or already <= budget):
                fit_units.append(t)
            already += int(st.get("n_features", 0))
        row0 += s.rows
    return SelectionPlan(shards, units, fit_units, sel, families, target_paths, sum(s.rows for s in shards),
                         _recorded_quarantine([res[(s, DOCS)][1] for s in shards]))


def _recorded_quarantine(metas: list[dict]) -> dict:
    """Invalid rows per reason over the docs side files (footers of older files hold no reasons)."""
    c: Counter = Counter()
    for m in metas:
        rec = m.get("quarantined", {})
        c.update(rec)
        rest = sum(u.get("invalid", 0) for u in m.get("stats", [])) - sum(rec.values())
        if rest > 0:
            c[UNRECORDED] += rest
    return dict(sorted(c.items()))


# -- scoring ----------------------------------------------------------------------------------------
def read_side_unit(path: str, unit: int, columns: list[str]) -> pa.Table:
    with fileio.open_read(path) as f:
        return pq.ParquetFile(f).read_row_group(unit, columns=columns)


class ScoreUnit(beam.DoFn):
    """Read one unit's feature columns (never text), score it, and compute its ranking keys."""

    def __init__(self, method: str, cfg: SelectionConfig, higher_is_better: bool, ranking: str,
                 progress_secs: float = 10.0, temperature: float = 1.0):
        self.method, self.cfg = method, cfg
        self.higher_is_better, self.ranking = higher_is_better, ranking
        self.temperature = cfg.temperature if cfg.temperature is not None else temperature
        self.progress_secs = progress_secs

    def setup(self):
        self.progress = Progress("select", self.progress_secs)
        self.c_read = counter("docs_read")
        self.c_invalid = counter("docs_invalid")
        self.c_scored = counter("docs_scored")
        self.c_elig = counter("docs_eligible")

    def teardown(self):
        if getattr(self, "progress", None) is not None:
            self.progress.print(final=True)

    def process(self, task: UnitTask, fitted=None):
        from lmsieve.pipelines.global_stats import read_ngram_unit
        from lmsieve.sampling.select import ranking_keys

        docs = read_side_unit(task.files[DOCS], task.unit, [ID, VALID, N_CHARS, DOMAIN])
        valid = np.asarray(docs.column(VALID).to_numpy(zero_copy_only=False), dtype=bool)
        rows_valid = np.flatnonzero(valid).astype(np.int32)
        vd = docs if valid.all() else docs.filter(pa.array(valid))
        ids = vd.column(ID).combine_chunks()
        if NGRAMS in task.files:
            occ, ids2 = read_ngram_unit(task.files[NGRAMS], task.unit, fitted.featurizer.num_buckets)
            _check_ids(ids, ids2, task)
            score, eligible = fitted.score_counts(occ)
        else:
            t = read_side_unit(task.files[self.method], task.unit, [ID, SCORE, ELIGIBLE])
            t = t if valid.all() else t.filter(pa.array(valid))
            _check_ids(ids, t.column(ID).combine_chunks(), task)
            score = t.column(SCORE).to_numpy(zero_copy_only=False).astype(np.float64)
            eligible = np.asarray(t.column(ELIGIBLE).to_numpy(zero_copy_only=False), dtype=bool)
            if fitted is not None:  # rds-rr: the global round-robin picks (lmsieve.pipelines.round_robin)
                score = fitted.scores(task.row0, rows_valid, score)
        score = np.asarray(score, dtype=np.float64)
        eligible = np.asarray(eligible, dtype=bool)
        finite = np.isfinite(score)
        if not finite.all():  # a damaged side file: a bad document, by policy
            r = int(np.flatnonzero(~finite)[0])
            if self.cfg.on_invalid == "error":
                raise InputError(f"non-finite score {score[r]} (id {ids[r].as_py()!r})",
                                 task.files.get(self.method, task.files.get(NGRAMS)), task.row_start + int(rows_valid[r]))
            keep = pa.array(finite)
            rows_valid, score, eligible = rows_valid[finite], score[finite], eligible[finite]
            vd, ids = vd.filter(keep), ids.filter(keep)
        contam, csets = self._decontaminate(task, rows_valid)
        if contam is not None and contam["keep"] is not None:
            keep = contam.pop("keep")
            rows_valid, score, eligible, csets = rows_valid[keep], score[keep], eligible[keep], None
            vd, ids = vd.filter(pa.array(keep)), ids.filter(pa.array(keep))
        key, tb = ranking_keys(score, ids, seed=self.cfg.seed, ranking=self.ranking,
                               temperature=self.temperature, higher_is_better=self.higher_is_better,
                               eligible=eligible)
        chars = vd.column(N_CHARS).to_numpy(zero_copy_only=False).astype(np.int64)
        domain = np.asarray(vd.column(DOMAIN).to_pylist(), dtype=object)
        group = domain if self.cfg.quotas is not None else np.full(len(ids), "", dtype=object)
        n = docs.num_rows
        self.c_read.inc(n)
        self.c_invalid.inc(n - len(rows_valid) - (contam or {}).get("removed", 0))
        self.c_scored.inc(len(rows_valid))
        self.c_elig.inc(int(eligible.sum()))
        self.progress.tick(n, f"shard {task.shard}")
        yield Scored(task.shard, task.unit, task.row_start, n, rows_valid, ids.to_pylist(), score, eligible,
                     key, tb, chars, chars, domain, group, contam=contam, contam_sets=csets)

    def _decontaminate(self, task: UnitTask, rows_valid: np.ndarray):
        """(unit contamination counts with the rows to keep in remove mode, report-mode sets)."""
        d = self.cfg.decontam
        if d is None:
            return None, None
        from lmsieve.pipelines.decontam_step import screen_unit

        keep, sets, c = screen_unit(task.files[d.name], task.unit, rows_valid, d.mode, len(d.set_names))
        c["removed"] = int((~keep).sum())
        c["keep"] = keep if c["removed"] else None
        return c, sets


def _check_ids(a, b, task: UnitTask) -> None:
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    if len(a) != len(b) or not a.equals(b):
        raise InputError(f"side files of shard {task.shard} unit {task.unit} are not aligned (ids differ); "
                         "rerun the features job", str(task.files))


class ApplyCutoffs(beam.DoFn):
    def setup(self):
        self.c_sel = counter("docs_selected")
        self._dom = {}

    def process(self, s: Scored, cutoffs):
        sel = np.zeros(len(s.key), dtype=bool)
        for g in set(s.group.tolist()):
            c = cutoffs.get(g, Cutoff("none"))
            m = s.group == g
            sel[m] = c.mask(s.key[m], s.tiebreak[m], s.score[m], s.eligible[m])
        s = dataclasses.replace(s, selected=sel)  # never mutate an input element
        self.c_sel.inc(int(sel.sum()))
        if sel.any():
            for d, k in Counter(NONE_DOMAIN if d is None else d for d in s.domain[sel].tolist()).items():
                if d not in self._dom:
                    self._dom[d] = counter(f"docs_selected.{d}")
                self._dom[d].inc(k)
        yield s


# -- counts -----------------------------------------------------------------------------------------
def unit_counts(s: Scored) -> dict:
    sel = s.selected
    dom = [NONE_DOMAIN if d is None else d for d in s.domain.tolist()]
    contam = {}
    if s.contam is not None:  # [decontaminate] (lmsieve.pipelines.decontam_step)
        from lmsieve.pipelines.decontam_step import selected_counts

        contam = {k: v for k, v in s.contam.items() if k in ("contaminated", "contaminated_by_set")}
        contam.update(selected_counts(s.contam_sets, sel, len(contam["contaminated_by_set"])))
    return {
        **contam, "input": s.rows, "invalid": s.rows - len(s.rows_valid) - (s.contam or {}).get("removed", 0),
        "ineligible": int((~s.eligible).sum()),
        "selected": int(sel.sum()), "chars_input": int(s.chars.sum()), "chars_selected": int(s.chars[sel].sum()),
        "domain_input": Counter(dom), "domain_selected": Counter(d for d, x in zip(dom, sel.tolist()) if x),
    }


class CountsFn(beam.CombineFn):
    """The manifest's counts; ``quarantined``: the features job's invalid rows per reason (the rest
    of the invalid rows had a non-finite stored score)."""

    def __init__(self, quarantined: dict | None = None, decontam=None):
        self.quarantined = dict(quarantined or {})
        self.decontam = decontam

    def create_accumulator(self):
        return {}

    def add_input(self, acc, c):
        return self.merge_accumulators([acc, c])

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            for k, v in a.items():
                if isinstance(v, Counter):
                    out.setdefault(k, Counter()).update(v)
                else:
                    out[k] = out.get(k, 0) + v
        return out

    def extract_output(self, acc):
        n_in, n_sel, n_bad = acc.get("input", 0), acc.get("selected", 0), acc.get("invalid", 0)
        reasons = dict(self.quarantined)
        if n_bad > sum(reasons.values()):
            reasons[NONFINITE_SCORE] = n_bad - sum(reasons.values())
        from lmsieve.pipelines.decontam_step import finish_counts

        return finish_counts(selection_counts(
            n_input=n_in, n_selected=n_sel, quarantined=reasons, ineligible=acc.get("ineligible", 0),
            chars_input=acc.get("chars_input", 0), chars_selected=acc.get("chars_selected", 0),
            domains_input=acc.get("domain_input", Counter()), domains_selected=acc.get("domain_selected", Counter()),
        ), acc, self.decontam)


# -- outputs ----------------------------------------------------------------------------------------
def scores_schema() -> pa.Schema:
    from lmsieve.schemas.manifest import SCORES_SCHEMA

    return SCORES_SCHEMA.append(pa.field("selected", pa.bool_()))


def _unit_of(s) -> int:
    return s.unit


class WriteShardOutputs(beam.DoFn):
    """One input shard's selected documents (read back by position) and its scores, to the temp dir."""

    def process(self, element):
        _, grouped = element
        outs = list(grouped["shard"])
        if not outs:
            return
        o: OutShard = outs[0]
        parts = sorted(grouped["scored"], key=_unit_of)
        shard = o.shard
        files = []
        with fileio.open_read(shard.path) as fh:
            pf = pq.ParquetFile(fh)
            w = fileio.AtomicParquetWriter(fileio.join(o.tmp_dir, o.selected_name), pf.schema_arrow)
            rows = 0
            try:
                for s in parts:
                    if not s.selected.any():
                        continue
                    u = shard.units[s.unit]
                    offs = s.rows_valid[s.selected]
                    t = fileio.read_unit(pf, u).take(pa.array(offs.astype(np.int64)))
                    got = t.column(ID).cast(pa.string()).to_pylist()
                    want = [i for i, x in zip(s.ids, s.selected.tolist()) if x]
                    if got != want:
                        raise InputError(f"ids changed since the features job (rows {u.row_start}..{u.row_stop}); "
                                         "rerun the features job", shard.path)
                    w.write_rows(t)
                    rows += t.num_rows
                w.commit()
            except BaseException:
                w.abort()
                raise
        files.append({"path": o.selected_name, "rows": rows})
        if o.write_scores:
            sch = scores_schema()
            w = fileio.AtomicParquetWriter(fileio.join(o.tmp_dir, o.scores_name), sch)
            n = 0
            for s in parts:
                w.write_rows(pa.Table.from_arrays(
                    [pa.array(s.ids, pa.string()), pa.array(s.score, pa.float64()), pa.array(s.eligible),
                     pa.array(s.selected)], schema=sch))
                n += len(s.ids)
            w.commit()
            files.append({"path": o.scores_name, "rows": n})
        yield from files


class RenameOutput(beam.DoFn):
    """Move one written output from the temp dir into the output dir (renames run in parallel)."""

    def __init__(self, out_dir: str, tmp_dir: str):
        self.out_dir, self.tmp_dir = out_dir, tmp_dir

    def process(self, o: dict):
        src, dst = fileio.join(self.tmp_dir, o["path"]), fileio.join(self.out_dir, o["path"])
        if fileio.exists(src):  # a retried bundle: already moved
            fileio.rename(src, dst)
        yield o


class Commit(beam.DoFn):
    """After every output is in place: remove stale outputs of an earlier run, write the manifest
    (last; its base is read from the temp dir, not carried in the graph), remove the temp dir."""

    def __init__(self, out_dir: str, tmp_dir: str, base_path: str,
                 patterns: tuple = ("selected-*.parquet", "scores-*.parquet", QUARANTINE_FILE)):
        self.out_dir, self.tmp_dir, self.base_path, self.patterns = out_dir, tmp_dir, base_path, patterns

    def process(self, _, outputs, counts):
        import json

        outputs = sorted(outputs, key=_path_of)
        names = {o["path"] for o in outputs}
        stale = [p for pat in self.patterns
                 for p in fileio.list_files(self.out_dir, pat)
                 if p.rsplit("/", 1)[-1] not in names]
        fileio.delete(stale)
        manifest = json.loads(fileio.read_text(self.base_path))
        manifest["counts"] = counts
        manifest["outputs"] = outputs
        fileio.write_text(fileio.join(self.out_dir, MANIFEST), json.dumps(manifest, indent=2) + "\n")
        _remove_dir(self.tmp_dir)
        yield fileio.join(self.out_dir, MANIFEST)


def _path_of(o: dict) -> str:
    return o["path"]


def _remove_dir(d: str) -> None:
    if fileio.is_url(d):
        fileio.delete(fileio.list_files(d, "**"))
    else:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def remove_killed_tmp(out_dir: str) -> list[str]:
    """Temp dirs (``.tmp-beam-*``) a killed selection left in ``out_dir``: removed by the next run
    of the same output (two runs never write one output directory at once)."""
    if fileio.is_url(out_dir):
        found = sorted({p.split("/.tmp-beam-", 1)[1].split("/", 1)[0]
                        for p in fileio.list_files(out_dir, ".tmp-beam-*/**")})
        dirs = [fileio.join(out_dir, f".tmp-beam-{x}") for x in found]
    else:
        import glob

        dirs = sorted(glob.glob(os.path.join(out_dir, ".tmp-beam-*")))
    for d in dirs:
        _remove_dir(d)
    return dirs


# -- the job ----------------------------------------------------------------------------------------
def _by_shard(s):
    return s.shard, s


def build_selection_pipeline(p: beam.Pipeline, plan: SelectionPlan, cfg: SelectionConfig, out_dir: str,
                             tmp_dir: str, manifest_base: dict, progress_secs: float = 10.0,
                             extra_outputs: list[dict] | None = None, dry: bool = False):
    """Add the selection job to ``p``. Task lists (units, shards) and the manifest's base are written
    to ``tmp_dir`` and read at run time: the graph does not grow with the pool. ``dry``: write
    nothing (rendering a job without submitting it)."""
    import json

    from lmsieve.pipelines.features_job import ReadTasks, unit_key
    from lmsieve.pipelines.global_stats import FitDsir

    sel = plan.selector
    ranking = cfg.ranking or sel.default_ranking
    units_path = fileio.write_tasks(fileio.join(tmp_dir, "_tasks", "units.txt"), plan.units, dry)
    base_path = fileio.join(tmp_dir, "_tasks", "manifest-base.json")
    if not dry:
        fileio.write_text(base_path, json.dumps(manifest_base))
    units = distribute(p | "Units" >> ReadTasks(units_path), "SpreadUnits", key=unit_key)
    score_fn = ScoreUnit(cfg.method, cfg, sel.higher_is_better, ranking, progress_secs, sel.default_temperature)
    if NGRAMS in plan.families:
        fit_path = fileio.write_tasks(fileio.join(tmp_dir, "_tasks", "fit-units.txt"), plan.fit_units, dry)
        fitted = p | "FitDSIR" >> FitDsir(sel, fit_path, plan.target_paths)
        scored = units | "Score" >> beam.ParDo(score_fn, fitted=beam.pvalue.AsSingleton(fitted))
    elif is_round_robin(sel):
        ranks = p | "RoundRobin" >> QueryRoundRobin(units_path, cfg.method, sel.get_params()["per_query_k"])
        scored = units | "Score" >> beam.ParDo(score_fn, fitted=beam.pvalue.AsSingleton(ranks))
    else:
        scored = units | "Score" >> beam.ParDo(score_fn)
    cutoffs = scored | "Cutoffs" >> GroupCutoffs(
        cfg.budgets(), exact=cfg.exact, num_quantiles=cfg.num_quantiles, epsilon=cfg.epsilon,
        max_num_elements=max(plan.n_rows, 1000), higher_is_better=sel.higher_is_better)
    chosen = scored | "Select" >> beam.ParDo(ApplyCutoffs(), cutoffs=beam.pvalue.AsDict(cutoffs))
    counts = chosen | "UnitCounts" >> beam.Map(unit_counts) | "Counts" >> beam.CombineGlobally(CountsFn(plan.quarantined, cfg.decontam))
    n = len(plan.shards)
    shards_path = fileio.write_tasks(fileio.join(tmp_dir, "_tasks", "shards.txt"),
                                     [(s.index, OutShard(s, n, tmp_dir, cfg.write_scores)) for s in plan.shards], dry)
    written = ({"shard": p | "OutShards" >> ReadTasks(shards_path),
                "scored": chosen | "ByShard" >> beam.Map(_by_shard)}
               | "JoinShard" >> beam.CoGroupByKey()
               | "Write" >> beam.ParDo(WriteShardOutputs()))
    if extra_outputs:
        written = (written, p | "ExtraOutputs" >> beam.Create(list(extra_outputs))) | "AllOutputs" >> beam.Flatten()
    moved = (written | "SpreadRenames" >> beam.Reshuffle()
             | "Rename" >> beam.ParDo(RenameOutput(out_dir, tmp_dir)))
    return (p | "CommitOnce" >> beam.Create([None])
            | "Commit" >> beam.ParDo(Commit(out_dir, tmp_dir, base_path),
                                     outputs=beam.pvalue.AsList(moved), counts=beam.pvalue.AsSingleton(counts)))


def _target_entries(paths: list[str]) -> list[dict]:
    """The target files as the in-process run records them (rows, bytes, sha256: targets are small)."""
    import hashlib

    from lmsieve.schemas.manifest import input_entry

    out = []
    for p in paths:
        h = hashlib.sha256()
        with fileio.open_read(p) as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        out.append(input_entry(p, fileio.read_table(p, [ID]).num_rows, fileio.file_size(p), h.hexdigest()))
    return out


def manifest_base(plan: SelectionPlan, cfg: SelectionConfig, features_dir: str) -> dict:
    """The manifest without counts and outputs, from the same builder as the in-process run's
    (:func:`lmsieve.schemas.manifest.selection_manifest`); pool shards are not hashed here (that
    would read every byte on the launcher: ``lmsieve release`` hashes them), Beam's own settings
    and the shards' content fingerprints are in ``runner``."""
    from lmsieve.schemas.manifest import input_entry, selection_manifest

    sel = plan.selector
    return selection_manifest(
        method=cfg.method, params=sel.get_params(), seed=cfg.seed,
        budget=cfg.budget.to_dict() if cfg.budget else None, ranking=cfg.ranking or sel.default_ranking,
        temperature=sel.default_temperature if cfg.temperature is None else cfg.temperature,
        quotas={g: b.to_dict() for g, b in sorted(cfg.quotas.items())} if cfg.quotas is not None else None,
        inputs={"pool": [input_entry(s.path, s.rows, s.bytes, None) for s in plan.shards],
                "target": _target_entries(plan.target_paths)},
        counts={}, outputs=[],
        runner={"engine": "apache-beam", "beam": beam.__version__, "features": features_dir, "exact": cfg.exact,
                "num_quantiles": cfg.num_quantiles, "epsilon": cfg.epsilon,
                "pool_fingerprints": [s.fingerprint for s in plan.shards]})


def merge_quarantine(plan: SelectionPlan, features_dir: str, tmp_dir: str) -> list[dict]:
    """The shards' quarantine files (features job, ``on_invalid = "quarantine"``) as one
    ``quarantine.parquet`` in the output (input order); none when nothing was quarantined."""
    from lmsieve.pipelines.features_job import quarantine_file

    if not plan.quarantined:
        return []
    parts = [fileio.read_table(f) for f in (quarantine_file(features_dir, s.name) for s in plan.shards)
             if fileio.exists(f)]
    if not parts:
        return []
    t = pa.concat_tables(parts)
    with fileio.open_write(fileio.join(tmp_dir, QUARANTINE_FILE)) as f:
        pq.write_table(t, f, compression="zstd")
    return [{"path": QUARANTINE_FILE, "rows": t.num_rows}]


def run_selection_job(pool, features_dir: str, target, out_dir: str, cfg: SelectionConfig, options=None,
                      progress_secs: float = 10.0, shards: list[Shard] | None = None) -> dict:
    """Plan, run and commit a selection; returns the manifest (read back from the output)."""
    import json

    from lmsieve.pipelines.metrics import query_counters
    from lmsieve.pipelines.options import make_options

    t0 = time.perf_counter()
    plan = plan_selection(pool, features_dir, target, cfg, shards=shards)
    fileio.makedirs(out_dir)
    manifest_path = fileio.join(out_dir, MANIFEST)
    fileio.delete([manifest_path])  # the old run is no longer complete from here on
    remove_killed_tmp(out_dir)
    tmp_dir = fileio.join(out_dir, f".tmp-beam-{uuid.uuid4().hex[:12]}")
    fileio.makedirs(tmp_dir)
    opts = options if options is not None else make_options()
    p = beam.Pipeline(options=opts)
    extra = merge_quarantine(plan, features_dir, tmp_dir)
    build_selection_pipeline(p, plan, cfg, out_dir, tmp_dir, manifest_base(plan, cfg, features_dir), progress_secs,
                             extra)
    result = p.run()
    from lmsieve.pipelines.features_job import waits

    if not waits(opts):
        return {"submitted": True, "out": out_dir}
    result.wait_until_finish()
    counters = query_counters(result)
    if not fileio.exists(manifest_path):  # a runner that returns before the job ends
        return {"counters": counters}
    manifest = json.loads(fileio.read_text(manifest_path))
    dt = time.perf_counter() - t0
    if progress_secs > 0:
        c = manifest["counts"]
        print(f"lmsieve[select] {c['selected']:,} of {c['input']:,} documents selected "
              f"({c['invalid']:,} invalid, {c['ineligible']:,} ineligible) in {dt:.1f}s "
              f"({c['input'] / max(dt, 1e-9):,.0f} docs/s) -> {out_dir}", flush=True)
    manifest["_counters"] = counters
    manifest["_seconds"] = dt
    return manifest


__all__ = ["SelectionConfig", "SelectionPlan", "build_selection_pipeline", "plan_selection", "run_selection_job"]
