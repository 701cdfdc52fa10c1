"""Declarative job specs (TOML): load, validate (errors name the key), and run.

A spec has up to six tables (see ``jobs/*.toml`` for commented examples)::

    [job]        name, description
    [inputs]     pool (required), target           paths, globs, dirs, gs:// URLs, or "sample:NAME";
                 on_invalid ("error" | "quarantine"), max_doc_bytes (bad documents: lmsieve.schemas.quarantine)
    [features]   out (required), compute, and one table per feature with its parameters:
                 [features.dsir_ngrams] num_buckets, ngrams
                 [features.embeddings]  model, dtype, device, max_batch_size, large_model, accelerator, ...
                 [features.proxy_loss]  proxy (a reference), options, handler keys (also proxy_chunks, pooled, sae)
                 [features.<method>]    parameters of a stored-score selector (zipfit, random)
    [selection]  method, out (required); one budget: keep | keep_fraction | keep_chars_fraction |
                 threshold; seed, ranking, temperature, exact, num_quantiles, epsilon, write_scores;
                 [selection.params] method parameters; [selection.quotas] per-domain budgets
    [beam]       Beam pipeline flags as key = value (runner, project, region, temp_location, ...)
    [mixture]    out, and `lmsieve mix`'s [mixture] keys except pool: a mixture sampled in Beam from the
                 selection output after the selection job (lmsieve/pipelines/mixture_step.py)
    [decontaminate] index (a saved index or evaluation files), mode ("remove" | "report"), min_overlap, ...:
                 a flag column in the features job, applied by the selection job (pipelines/decontam_step.py)

Relative paths are relative to the working directory, and may not leave it through ``..``
(nor may any path hold a ``..`` component once absolute or a URL): a spec names its inputs and
outputs explicitly, so a shared spec cannot write outside its run. Validation reads no data: the
schema (pydantic, :mod:`lmsieve.pipelines.spec_schema`) checks structure, types and ranges; then
cross-field rules (one budget, the features the method needs,
Dataflow's required flags and remote paths) and builds every selector and handler from its
parameters, so a spec that validates fails later only on data or infrastructure.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from lmsieve.pipelines.spec_schema import BUDGET_KEYS, LM_FEATURES, parse_tables
from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES

TABLE_FEATURES = ("dsir_ngrams",)
MODEL_FEATURES = ("embeddings",) + LM_FEATURES

def _err(key: str, msg: str, source: str | None = None) -> ConfigError:
    return ConfigError(f"{source + ': ' if source else ''}{key}: {msg}")


def _paths(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def resolve_path(p: str) -> str:
    """``sample:NAME`` -> the bundled sample file; anything else unchanged."""
    if p.startswith("sample:"):
        from lmsieve.data import sample_path

        return sample_path(p.split(":", 1)[1])
    return p


def check_no_escape(key: str, p: str, source=None) -> None:
    """A relative path may not leave the working (run) directory through ``..``; an absolute path
    or URL may not hold a ``..`` component at all. Raises a ConfigError naming ``key``."""
    if _is_remote(p):
        parts = p.split("://", 1)[1].split("/")
    elif os.path.isabs(p):
        parts = p.replace(os.sep, "/").split("/")
    else:
        norm = os.path.normpath(p)
        parts = [".."] if norm == ".." or norm.startswith(".." + os.sep) else []
    if ".." in parts:
        raise _err(key, f"{p!r} escapes the run directory through '..' (name the path without '..')", source)


def _is_remote(p: str) -> bool:
    from lmsieve.pipelines.fileio import is_url

    return is_url(p)


@dataclass
class JobSpec:
    """A validated job spec."""

    source: str
    name: str
    pool: list[str]
    target: list[str]
    features: dict | None
    selection: dict | None
    beam: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    on_invalid: str = "error"
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
    mixture: dict | None = None  # [mixture]: a driver-side step after the selection job (mixture_step.py)
    decontaminate: dict | None = None  # [decontaminate]: lmsieve.pipelines.decontam_step

    def decontam_feature(self):
        """The ``[decontaminate]`` flag feature (index built or loaded once, in the driver), or None."""
        if not self.decontaminate:
            return None
        if getattr(self, "_decontam", None) is None:
            from lmsieve.pipelines.decontam_step import make_feature

            self._decontam = make_feature(self.decontaminate)
        return self._decontam

    # -- what to build ----------------------------------------------------------------------------
    @property
    def features_dir(self) -> str | None:
        return self.features["out"] if self.features else None

    def feature_names(self) -> list[str]:
        return list(self.features.get("compute", [])) if self.features else []

    def score_params(self, method: str) -> dict:
        """Parameters of a stored-score feature: [features.<method>], else [selection.params]."""
        if self.features and isinstance(self.features.get(method), dict):
            return dict(self.features[method])
        if self.selection and self.selection["method"] == method:
            return dict(self.selection.get("params", {}))
        return {}

    def ngram_params(self) -> dict:
        base = {"num_buckets": 10000, "ngrams": 2}
        if self.features and isinstance(self.features.get("dsir_ngrams"), dict):
            base.update(self.features["dsir_ngrams"])
        elif self.selection and self.selection["method"] == "dsir" and not stored_dsir(self.selection):
            p = self.selection.get("params", {})
            base.update({k: p[k] for k in ("num_buckets", "ngrams") if k in p})
        return base

    def table_features(self, fit: bool = True) -> list:
        """Table features to compute (stored-score selectors are fitted on the target if ``fit``)."""
        from lmsieve.pipelines.features import NgramFeature, hash_target_files, read_target, selector_class
        from lmsieve.pipelines.round_robin import stored_feature

        out = []
        for name in self.feature_names():
            if name == "dsir_ngrams":
                out.append(NgramFeature(**self.ngram_params()))
            elif name not in MODEL_FEATURES:
                sel = selector_class(name)(**self.score_params(name))
                if fit:
                    from lmsieve.pipelines.fileio import expand_inputs

                    paths = expand_inputs(self.target, "target") if self.target else []
                    sel.fit(read_target(paths) if paths else None)
                    out.append(stored_feature(sel, hash_target_files(paths) if paths else ""))
                else:
                    out.append(stored_feature(sel, ""))
        if self.decontaminate:
            out.append(self.decontam_feature())
        return out

    def model_handlers(self) -> list:
        from lmsieve.pipelines.inference import MODEL_HANDLERS, RegistryModelHandler

        out = []
        for name in self.feature_names():
            if name in LM_FEATURES:
                out.append(RegistryModelHandler(name, **dict(self.features.get(name, {}))))
            elif name in MODEL_FEATURES:
                kw = dict(self.features.get(name, {}))
                out.append(MODEL_HANDLERS[name](kw.pop("model", None), **kw))
        return out

    def selection_config(self):
        from lmsieve.pipelines.selection_job import SelectionConfig

        s = self.selection
        if s["method"] == "dsir" and not stored_dsir(s):
            params = {**s.get("params", {}), **self.ngram_params()}
        else:
            params = self.score_params(s["method"])
        quotas = None
        if "quotas" in s:
            quotas = {d: _budget(q) for d, q in s["quotas"].items()}
        return SelectionConfig(
            method=s["method"], params=params, budget=None if quotas is not None else _budget(s),
            quotas=quotas, seed=s.get("seed", 0), ranking=s.get("ranking"), temperature=s.get("temperature"),
            exact=s.get("exact", True), num_quantiles=s.get("num_quantiles", 1001), epsilon=s.get("epsilon", 1e-3),
            write_scores=s.get("write_scores", True), on_invalid=self.on_invalid, decontam=self.decontam_feature())

    def beam_flags(self) -> list[str]:
        from lmsieve.pipelines.options import beam_flags_from_table

        return beam_flags_from_table(self.beam)


def _budget(t: dict):
    from lmsieve.sampling.select import Budget

    if "keep" in t:
        return Budget(k=int(t["keep"]))
    if "keep_fraction" in t:
        return Budget(fraction=float(t["keep_fraction"]))
    if "keep_chars_fraction" in t:
        return Budget(length_fraction=float(t["keep_chars_fraction"]))
    return Budget(threshold=float(t["threshold"]))


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a", "b", "c"], value); VALUE is TOML, or a plain string."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
    k, v = item.split("=", 1)
    try:
        val = tomllib.loads(f"v = {v}")["v"]
    except tomllib.TOMLDecodeError:
        val = v
    return [p for p in k.strip().split(".") if p], val


def load_spec(path: str | os.PathLike, overrides: list[str] | None = None, beam_flags: list[str] | None = None) -> JobSpec:
    """Read and validate a job spec; ``overrides`` are ``KEY=VALUE`` items applied first."""
    path = os.fspath(path)
    try:
        if _is_remote(path):  # e.g. a spec in GCS read by a Flex Template launcher
            from lmsieve.pipelines.fileio import read_text

            raw = tomllib.loads(read_text(path))
        else:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such job spec") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for item in overrides or []:
        keys, val = parse_override(item)
        t = raw
        for k in keys[:-1]:
            t = t.setdefault(k, {})
            if not isinstance(t, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a table")
        t[keys[-1]] = val
    return validate_spec(raw, path, beam_flags)


def validate_spec(raw: dict, source: str = "<spec>", beam_flags: list[str] | None = None) -> JobSpec:
    """Structure, types and ranges by the schema (:mod:`lmsieve.pipelines.spec_schema`), then the
    rules between tables; every error is one line naming the file and the key."""
    src = source
    model = parse_tables(raw, src)
    inputs = model.inputs
    pool = [resolve_path(p) for p in _paths(inputs.pool)]
    target = [resolve_path(p) for p in _paths(inputs.target)] if inputs.target is not None else []
    for key, paths in (("inputs.pool", pool), ("inputs.target", target)):
        for i, p in enumerate(paths):
            check_no_escape(key if len(paths) == 1 else f"{key}[{i}]", p, src)
    if model.features is None and model.selection is None:
        raise _err("features|selection", "a job needs a [features] or a [selection] table", src)
    selection = features = None
    if model.selection is not None:
        selection = _validate_selection(model.selection.model_dump(exclude_unset=True), src)
    if model.features is not None:
        features = _validate_features(model.features.model_dump(exclude_unset=True), selection, bool(target), src)
    for key, t in (("features.out", features), ("selection.out", selection)):
        if t is not None:
            check_no_escape(key, t["out"], src)
    job = model.job
    spec = JobSpec(src, job.name or os.path.splitext(os.path.basename(source))[0], pool, target,
                   features, selection, dict(model.beam), raw, inputs.on_invalid, inputs.max_doc_bytes)
    if "decontaminate" in raw:
        from lmsieve.pipelines.decontam_step import validate_table

        spec.decontaminate = validate_table(raw["decontaminate"], src)
    _validate_runner(spec, beam_flags or [], src)
    _build_objects(spec, src)
    if model.mixture is not None:
        from lmsieve.pipelines.mixture_step import validate_mixture

        spec.mixture = validate_mixture(raw["mixture"], selection, pool, src)
        check_no_escape("mixture.out", spec.mixture["out"], src)
    return spec


def _validate_selection(s: dict, src) -> dict:
    from lmsieve.pipelines.features import selector_class

    try:
        selector_class(s["method"])
    except ConfigError as exc:
        raise _err("selection.method", str(exc), src) from None
    return s


def stored_dsir(selection: dict | None) -> bool:
    """DSIR selected from a stored score (window mode: a fitted selector scores each document's
    windows in the features job, as ZIP-FIT's) rather than from stored n-gram counts."""
    if not selection or selection.get("method") != "dsir":
        return False
    p = selection.get("params", {})
    if p.get("fitted"):
        from lmsieve.pipelines.features import selector_class

        return not hasattr(selector_class("dsir")(**p), "score_counts")
    return p.get("unit") == "window"


def _validate_features(f: dict, selection: dict | None, has_target: bool, src) -> dict:
    from lmsieve.pipelines.features import selector_class

    need = []
    if selection is not None:
        need = ["dsir_ngrams"] if selection["method"] == "dsir" and not stored_dsir(selection) \
            else [selection["method"]]
    comp = f.get("compute") if f.get("compute") is not None else need
    for i, name in enumerate(comp):
        if name in TABLE_FEATURES or name in MODEL_FEATURES:
            continue
        try:
            cls = selector_class(name)
        except ConfigError:
            raise _err(f"features.compute[{i}]", f"unknown feature {name!r} (known: dsir_ngrams, embeddings, "
                       f"{', '.join(LM_FEATURES)}, or a selector scored against a fixed target: zipfit, random)",
                       src) from None
        own = f.get(name) if isinstance(f.get(name), dict) else \
            (selection or {}).get("params", {}) if (selection or {}).get("method") == name else {}
        if name == "dsir" and own.get("unit") == "window" and not own.get("fitted"):  # fit in-process first
            raise _err("selection.params.fitted", "DSIR with unit = 'window' scores windows of each document's "
                       "text in the features job: fit it in-process first (lmsieve select --method dsir --param "
                       "unit=window ... --save-fitted DIR) and give params = {fitted = \"DIR\"}", src)
        if cls.needs_pool_sample and not own.get("fitted"):  # fitted=DIR: fitted in-process once (BETR, ...)
            raise _err(f"features.compute[{i}]", f"{name!r} needs pool statistics; fit it in-process and pass "
                       "fitted=DIR, or compute 'dsir_ngrams' and select with method 'dsir'", src)
        if name == "zipfit" and not has_target:
            raise _err("inputs.target", f"feature {name!r} is scored against a target: give inputs.target", src)
    for n in need:
        if n not in comp:
            raise _err("features.compute", f"selection.method {selection['method']!r} needs the {n!r} feature", src)
    if len(set(comp)) != len(comp):
        raise _err("features.compute", "lists a feature twice", src)
    f["compute"] = comp
    if selection is not None and selection["method"] != "dsir" and isinstance(f.get(selection["method"]), dict) \
            and "params" in selection and selection["params"] != f[selection["method"]]:
        raise _err("selection.params", f"differs from [features.{selection['method']}]; give the parameters once", src)
    if selection is not None and selection["method"] == "dsir" and isinstance(f.get("dsir_ngrams"), dict):
        for kk in ("num_buckets", "ngrams"):
            a, b = selection.get("params", {}).get(kk), f["dsir_ngrams"].get(kk)
            if a is not None and b is not None and a != b:
                raise _err(f"selection.params.{kk}", f"{a} differs from features.dsir_ngrams.{kk} = {b}", src)
    return f


def _merged_options(spec: JobSpec, flags: list[str]):
    from lmsieve.pipelines.options import make_options

    return make_options(spec.beam_flags() + list(flags))


def _validate_runner(spec: JobSpec, flags: list[str], src) -> None:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from lmsieve.pipelines.options import runner_name

    opts = _merged_options(spec, flags)
    runner = runner_name(opts)
    if runner in ("DirectRunner", "SwitchingDirectRunner"):
        raise _err("beam.runner", "DirectRunner tries to download Prism first; use FnApiRunner locally", src)
    if runner != "DataflowRunner":
        return
    g = opts.view_as(GoogleCloudOptions)
    for k in ("project", "region", "temp_location"):
        if not getattr(g, k):
            raise _err(f"beam.{k}", "required with DataflowRunner (or pass --" + k + ")", src)
    if not _is_remote(g.temp_location):
        raise _err("beam.temp_location", f"must be a gs:// URL on Dataflow, got {g.temp_location!r}", src)
    paths = [("inputs.pool", p) for p in spec.pool] + [("inputs.target", p) for p in spec.target]
    if spec.features:
        paths.append(("features.out", spec.features["out"]))
    if spec.selection:
        paths.append(("selection.out", spec.selection["out"]))
    for key, p in paths:
        if not _is_remote(p):
            raise _err(key, f"{p!r} is a local path; Dataflow workers cannot reach it (use gs://)", src)
    emb = (spec.features or {}).get("embeddings", {})
    svc = " ".join(str(x) for x in _as_list(spec.beam.get("dataflow_service_options"))) + " " + " ".join(flags)
    if isinstance(emb, dict) and emb.get("accelerator") and "worker_accelerator" in svc:
        raise _err("features.embeddings.accelerator", "a resource hint (right fitting) cannot be combined with "
                   "beam.dataflow_service_options worker_accelerator: use one of them", src)


def _as_list(v) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def _build_objects(spec: JobSpec, src) -> None:
    """Construct selectors and handlers from their parameters (no data, no model loading)."""
    if spec.features:
        for name in spec.feature_names():
            key = f"features.{name}"
            try:
                if name == "dsir_ngrams":
                    from lmsieve.pipelines.features import NgramFeature

                    NgramFeature(**spec.ngram_params())
                elif name in MODEL_FEATURES:
                    spec.model_handlers()
                else:
                    from lmsieve.pipelines.features import selector_class

                    selector_class(name)(**spec.score_params(name))
            except ConfigError as exc:
                raise _err(key, str(exc), src) from None
            except TypeError as exc:
                raise _err(key, f"bad parameter ({exc})", src) from None
    if spec.selection:
        from lmsieve.pipelines.selection_job import make_selector

        try:
            cfg = spec.selection_config()
            make_selector(cfg)
        except ConfigError as exc:
            msg = str(exc)
            raise (ConfigError(f"{src}: {msg}") if msg.startswith("selection.") else _err("selection.params", msg, src)) \
                from None


@dataclass
class JobResult:
    features: Any = None
    selection: dict | None = None
    mixture: dict | None = None


def run_job(spec: JobSpec, beam_flags: list[str] | None = None, stage: str = "all", progress_secs: float = 10.0,
            fail_on_shard: str | None = None) -> JobResult:
    """Run the spec's features job, then its selection job (or one of them, by ``stage``)."""
    from lmsieve.pipelines.features_job import plan_shards, run_features_job
    from lmsieve.pipelines.selection_job import run_selection_job

    res = JobResult()
    if stage == "features" and not spec.features or stage == "selection" and not spec.selection:
        raise ConfigError(f"{spec.source}: {stage}: the spec has no [{stage}] table to run")
    flags = spec.beam_flags() + list(beam_flags or [])
    if stage == "all" and spec.features and spec.selection and "--no_wait_until_finish" in flags:
        raise ConfigError(f"{spec.source}: --no_wait_until_finish submits one job and returns: run the stages "
                          "separately (--lmsieve_stage features, then --lmsieve_stage selection)")
    shards = None
    if spec.features and stage in ("all", "features"):
        opts = _merged_options(spec, list(beam_flags or []))
        shards = plan_shards(spec.pool)
        res.features = run_features_job(spec.pool, spec.features_dir, spec.table_features(), spec.model_handlers(),
                                        options=opts, progress_secs=progress_secs, fail_on_shard=fail_on_shard,
                                        shards=shards, on_invalid=spec.on_invalid, max_doc_bytes=spec.max_doc_bytes)
    if spec.selection and stage in ("all", "selection"):
        if not spec.features_dir:
            raise ConfigError(f"{spec.source}: features.out: the selection job reads feature side files; "
                              "give [features] out (and compute them first)")
        from lmsieve.pipelines.options import make_options

        res.selection = run_selection_job(spec.pool, spec.features_dir, spec.target, spec.selection["out"],
                                          spec.selection_config(), options=make_options(flags),
                                          progress_secs=progress_secs, shards=shards)
    if spec.mixture and stage in ("all", "selection"):
        from lmsieve.pipelines.mixture_step import run_mixture_step

        from lmsieve.pipelines.options import make_options

        res.mixture = run_mixture_step(spec.mixture, options=make_options(flags))
    return res


__all__ = ["JobResult", "JobSpec", "check_no_escape", "load_spec", "parse_override", "resolve_path", "run_job", "validate_spec"]
