"""Declarative job specs (TOML): load, validate (errors name the key), and run.

A spec has up to six tables (see ``jobs/*.toml`` for commented examples)::

    [job]        name, description
    [inputs]     pool (required), target           paths, globs, dirs, gs:// URLs, or "sample:NAME";
                 on_invalid ("error" | "quarantine"), max_doc_bytes (bad documents: lmsieve.schemas.quarantine)
    [features]   out (required), compute, and one table per feature with its parameters:
                 [features.dsir_ngrams] num_buckets, ngrams
                 [features.embeddings]  model, dtype, device, max_batch_size, large_model, accelerator, ...
                 [features.<method>]    parameters of a stored-score selector (zipfit, random)
    [selection]  method, out (required); one budget: keep | keep_fraction | keep_chars_fraction |
                 threshold; seed, ranking, temperature, exact, num_quantiles, epsilon, write_scores;
                 [selection.params] method parameters; [selection.quotas] per-domain budgets
    [beam]       Beam pipeline flags as key = value (runner, project, region, temp_location, ...)
    [mixture]    out, and `lmsieve mix`'s [mixture] keys except pool: a mixture sampled on the driver
                 from the selection output after the selection job (lmsieve/pipelines/mixture_step.py)

Relative paths are relative to the working directory, and may not leave it through ``..``
(nor may any path hold a ``..`` component once absolute or a URL): a spec names its inputs and
outputs explicitly, so a shared spec cannot write outside its run. Validation reads no data: it checks
structure, types and ranges, cross-field rules (one budget, the features the method needs,
Dataflow's required flags and remote paths) and builds every selector and handler from its
parameters, so a spec that validates fails later only on data or infrastructure.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, POLICIES

TABLE_FEATURES = ("dsir_ngrams",)
MODEL_FEATURES = ("embeddings",)
BUDGET_KEYS = ("keep", "keep_fraction", "keep_chars_fraction", "threshold")

_EMBED_KEYS = {
    "model": str, "dtype": str, "normalize": bool, "max_seq_length": int, "device": str, "max_batch_size": int,
    "max_batch_chars": int, "length_cap": int, "large_model": bool, "model_copies": int, "accelerator": str,
    "min_ram": str,
}
_SELECTION_KEYS = {
    "method": str, "out": str, "keep": int, "keep_fraction": float, "keep_chars_fraction": float,
    "threshold": float, "seed": int, "ranking": str, "temperature": float, "exact": bool, "num_quantiles": int,
    "epsilon": float, "write_scores": bool, "params": dict, "quotas": dict,
}


def _err(key: str, msg: str, source: str | None = None) -> ConfigError:
    return ConfigError(f"{source + ': ' if source else ''}{key}: {msg}")


def _type_name(t) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
            list: "a list"}.get(t, t.__name__)


def _check_type(key: str, value: Any, t, source) -> Any:
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t is int and isinstance(value, bool) or t is float and isinstance(value, bool):
        raise _err(key, f"expected {_type_name(t)}, got {value!r}", source)
    if not isinstance(value, t):
        raise _err(key, f"expected {_type_name(t)}, got {value!r}", source)
    return value


def _check_keys(table: dict, allowed, prefix: str, source) -> None:
    for k in table:
        if k not in allowed:
            raise _err(f"{prefix}.{k}" if prefix else k, f"unknown key (known: {', '.join(sorted(allowed))})", source)


def _strlist(key: str, v: Any, source) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return list(v)
    raise _err(key, f"expected a path or a non-empty list of paths, got {v!r}", source)


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
        elif self.selection and self.selection["method"] == "dsir":
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
        return out

    def model_handlers(self) -> list:
        from lmsieve.pipelines.inference import MODEL_HANDLERS

        out = []
        for name in self.feature_names():
            if name in MODEL_FEATURES:
                kw = dict(self.features.get(name, {}))
                out.append(MODEL_HANDLERS[name](kw.pop("model", None), **kw))
        return out

    def selection_config(self):
        from lmsieve.pipelines.selection_job import SelectionConfig

        s = self.selection
        if s["method"] == "dsir":
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
            write_scores=s.get("write_scores", True), on_invalid=self.on_invalid)

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


def _check_budget(t: dict, prefix: str, source, allow_threshold: bool = True) -> None:
    given = [k for k in BUDGET_KEYS if k in t]
    if len(given) != 1:
        where = f"{prefix}.{'|'.join(BUDGET_KEYS)}" if prefix else "|".join(BUDGET_KEYS)
        raise _err(where, f"give exactly one budget (got {', '.join(given) or 'none'})", source)
    k = given[0]
    v = t[k]
    key = f"{prefix}.{k}" if prefix else k
    if k == "keep":
        _check_type(key, v, int, source)
        if v < 0:
            raise _err(key, f"must be >= 0, got {v}", source)
    elif k in ("keep_fraction", "keep_chars_fraction"):
        v = _check_type(key, v, float, source)
        if not 0 < v <= 1:
            raise _err(key, f"must be in (0, 1], got {v}", source)
    else:
        _check_type(key, v, float, source)


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
    src = source
    _check_keys(raw, ("job", "inputs", "features", "selection", "beam", "mixture"), "", src)
    job = raw.get("job", {})
    _check_type("job", job, dict, src)
    _check_keys(job, ("name", "description"), "job", src)
    for k in ("name", "description"):
        if k in job:
            _check_type(f"job.{k}", job[k], str, src)
    inputs = raw.get("inputs")
    if inputs is None:
        raise _err("inputs.pool", "required (the documents to select from)", src)
    _check_type("inputs", inputs, dict, src)
    _check_keys(inputs, ("pool", "target", "on_invalid", "max_doc_bytes"), "inputs", src)
    if "pool" not in inputs:
        raise _err("inputs.pool", "required (the documents to select from)", src)
    on_invalid = _check_type("inputs.on_invalid", inputs.get("on_invalid", "error"), str, src)
    if on_invalid not in POLICIES:
        raise _err("inputs.on_invalid", f"must be one of {', '.join(POLICIES)}, got {on_invalid!r}", src)
    max_doc_bytes = _check_type("inputs.max_doc_bytes", inputs.get("max_doc_bytes", DEFAULT_MAX_DOC_BYTES), int, src)
    if max_doc_bytes < 1:
        raise _err("inputs.max_doc_bytes", f"must be >= 1, got {max_doc_bytes}", src)
    pool = [resolve_path(p) for p in _strlist("inputs.pool", inputs["pool"], src)]
    target = [resolve_path(p) for p in _strlist("inputs.target", inputs["target"], src)] if "target" in inputs else []
    for key, paths in (("inputs.pool", pool), ("inputs.target", target)):
        for i, p in enumerate(paths):
            check_no_escape(key if len(paths) == 1 else f"{key}[{i}]", p, src)
    features = raw.get("features")
    selection = raw.get("selection")
    if features is None and selection is None:
        raise _err("features|selection", "a job needs a [features] or a [selection] table", src)
    if selection is not None:
        selection = _validate_selection(selection, src)
    if features is not None:
        features = _validate_features(features, selection, bool(target), src)
    beam_table = raw.get("beam", {})
    _check_type("beam", beam_table, dict, src)
    for k, v in beam_table.items():
        if isinstance(v, dict) or (isinstance(v, list) and not all(isinstance(x, (str, int, float)) for x in v)):
            raise _err(f"beam.{k}", "expected a string, number, boolean or list of those", src)
    for key, t in (("features.out", features), ("selection.out", selection)):
        if t is not None:
            check_no_escape(key, t["out"], src)
    spec = JobSpec(src, job.get("name", os.path.splitext(os.path.basename(source))[0]), pool, target,
                   features, selection, dict(beam_table), raw, on_invalid, max_doc_bytes)
    _validate_runner(spec, beam_flags or [], src)
    _build_objects(spec, src)
    if "mixture" in raw:
        from lmsieve.pipelines.mixture_step import validate_mixture

        spec.mixture = validate_mixture(raw["mixture"], selection, pool, src)
        check_no_escape("mixture.out", spec.mixture["out"], src)
    return spec


def _validate_selection(s: Any, src) -> dict:
    _check_type("selection", s, dict, src)
    _check_keys(s, _SELECTION_KEYS, "selection", src)
    for k in ("method", "out"):
        if k not in s:
            raise _err(f"selection.{k}", "required", src)
    s = dict(s)
    for k, t in _SELECTION_KEYS.items():
        if k in s:
            s[k] = _check_type(f"selection.{k}", s[k], t, src)
    from lmsieve.pipelines.features import selector_class

    try:
        selector_class(s["method"])
    except ConfigError as exc:
        raise _err("selection.method", str(exc), src) from None
    if "quotas" in s:
        if any(k in s for k in BUDGET_KEYS):
            raise _err("selection.quotas", "give either a global budget or per-domain quotas, not both", src)
        if not s["quotas"]:
            raise _err("selection.quotas", "empty table", src)
        for d, q in s["quotas"].items():
            _check_type(f"selection.quotas.{d}", q, dict, src)
            _check_keys(q, BUDGET_KEYS, f"selection.quotas.{d}", src)
            _check_budget(q, f"selection.quotas.{d}", src)
    else:
        _check_budget(s, "selection", src)
    if "ranking" in s and s["ranking"] not in ("topk", "gumbel"):
        raise _err("selection.ranking", f"must be 'topk' or 'gumbel', got {s['ranking']!r}", src)
    if "temperature" in s and not s["temperature"] > 0:
        raise _err("selection.temperature", f"must be > 0, got {s['temperature']}", src)
    if "num_quantiles" in s and s["num_quantiles"] < 3:
        raise _err("selection.num_quantiles", f"must be >= 3, got {s['num_quantiles']}", src)
    if "epsilon" in s and not 0 < s["epsilon"] < 1:
        raise _err("selection.epsilon", f"must be in (0, 1), got {s['epsilon']}", src)
    return s


def _validate_features(f: Any, selection: dict | None, has_target: bool, src) -> dict:
    from lmsieve.pipelines.features import selector_class

    _check_type("features", f, dict, src)
    f = dict(f)
    if "out" not in f:
        raise _err("features.out", "required (directory of the feature side files)", src)
    _check_type("features.out", f["out"], str, src)
    need = []
    if selection is not None:
        need = ["dsir_ngrams"] if selection["method"] == "dsir" else [selection["method"]]
    if "compute" in f:
        comp = f["compute"]
        if not isinstance(comp, list) or not all(isinstance(x, str) for x in comp):
            raise _err("features.compute", f"expected a list of feature names, got {comp!r}", src)
    else:
        comp = need
    for i, name in enumerate(comp):
        if name in TABLE_FEATURES or name in MODEL_FEATURES:
            continue
        try:
            cls = selector_class(name)
        except ConfigError:
            raise _err(f"features.compute[{i}]", f"unknown feature {name!r} (known: dsir_ngrams, embeddings, "
                       "or a selector scored against a fixed target: zipfit, random)", src) from None
        own = f.get(name) if isinstance(f.get(name), dict) else \
            (selection or {}).get("params", {}) if (selection or {}).get("method") == name else {}
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
    for k, v in f.items():
        if k in ("out", "compute"):
            continue
        if not isinstance(v, dict):
            raise _err(f"features.{k}", f"unknown key (known: out, compute, and one table per feature)", src)
        if k == "dsir_ngrams":
            _check_keys(v, ("num_buckets", "ngrams"), "features.dsir_ngrams", src)
            for kk in ("num_buckets", "ngrams"):
                if kk in v:
                    _check_type(f"features.dsir_ngrams.{kk}", v[kk], int, src)
                    if v[kk] < 1:
                        raise _err(f"features.dsir_ngrams.{kk}", f"must be >= 1, got {v[kk]}", src)
        elif k == "embeddings":
            _check_keys(v, _EMBED_KEYS, "features.embeddings", src)
            for kk, t in _EMBED_KEYS.items():
                if kk in v:
                    _check_type(f"features.embeddings.{kk}", v[kk], t, src)
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

        res.mixture = run_mixture_step(spec.mixture)
    return res


__all__ = ["JobResult", "JobSpec", "check_no_escape", "load_spec", "parse_override", "resolve_path", "run_job", "validate_spec"]
