"""``lmsieve mix optimise``: proxy runs + optimiser from a TOML spec, or a recommendation from a run table.

The spec is the ``[mixture]`` table (pool, budget, seed, component column; ``weights`` name the
components) plus an ``[optimise]`` table::

    [optimise]
    target = "heldout.parquet"          # or a table name = path; the objective is the first (or `objective`)
    method = "qlogei"                   # qlogei | mf-mes | random | regmix
    mode = "pool"                       # pool (replay over candidates) | continuous
    n_init = 4                          # initial runs
    n_runs = 10                         # cost budget, in target-fidelity runs
    n_candidates = 256                  # Dirichlet candidates in the pool (plus vertices and uniform)
    eval_docs = 64                      # target loss on the first eval_docs documents ...
    eval_chars = 1024                   # ... cut to eval_chars characters
    compare = true                      # also run the uniform and natural mixtures at the target fidelity
    [[optimise.fidelities]]             # default: one fidelity "tiny"
    name = "tiny"; steps = 60; cost = 1.0; batch_size = 16; lr = 3e-3
    model = {n_layer = 1, d_model = 32, n_head = 2, context = 64}

Proxy training budget: ``mixture.budget`` tokens (``unit = "tokens"``) per proxy run. Outputs in
DIR: ``runs.parquet`` (the resumable run table: a rerun skips finished runs), then, written through
:class:`~lmsieve.io.output.RunOutput` with ``manifest.json`` last: ``recommendation.json``,
``recommended.toml`` (a ready ``[mixture]`` spec), ``summary.json`` and the plots of
:mod:`lmsieve.mixtures.report`.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from lmsieve.mixtures.optimize import (METHODS, MODES, evaluate_mixture, optimise, recommend_from_table,
                                       table_components)
from lmsieve.mixtures.runs import Fidelity, ProxyRunner, RunTable
from lmsieve.mixtures.spec import MixtureSpec, load_spec
from lmsieve.schemas.errors import ConfigError, InputError

RUNS = "runs.parquet"
_KEYS = {"target": (str, dict), "objective": str, "components": list, "method": str, "mode": str, "n_init": int,
         "n_runs": int, "n_candidates": int, "max_runs": int, "seed": int, "eval_docs": int, "eval_chars": int,
         "compare": bool, "fidelities": list}
_FID_KEYS = {"name": str, "steps": int, "cost": (int, float), "batch_size": int, "lr": (int, float), "model": dict}


def _check(table: dict, keys: dict, where: str) -> dict:
    for k, v in table.items():
        if k not in keys:
            raise ConfigError(f"{where}.{k}: unknown key (known: {', '.join(sorted(keys))})")
        if not isinstance(v, keys[k]) or isinstance(v, bool) and keys[k] is not bool:
            raise ConfigError(f"{where}.{k}: wrong type {type(v).__name__} ({v!r})")
    return table


def load_optimise(path) -> tuple[MixtureSpec, dict]:
    """(mixture spec, validated ``[optimise]`` table with defaults and resolved target paths)."""
    p = Path(path)
    mix = load_spec(p)
    opt = _check(dict(tomllib.loads(p.read_text()).get("optimise", {})), _KEYS, "optimise")
    if opt.get("method", "qlogei") not in METHODS:
        raise ConfigError(f"optimise.method: expected one of {METHODS}, got {opt['method']!r}")
    if opt.get("mode", "pool") not in MODES:
        raise ConfigError(f"optimise.mode: expected one of {MODES}, got {opt['mode']!r}")
    fids = [Fidelity(**_check(dict(f), _FID_KEYS, f"optimise.fidelities[{i}]")) if isinstance(f, dict) else
            _raise(f"optimise.fidelities[{i}]: expected a table") for i, f in enumerate(opt.get("fidelities", []))]
    opt["fidelities"] = fids or [Fidelity("tiny", model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64},
                                          steps=60)]
    tgt = opt.get("target", {})
    tgt = {Path(tgt).stem.split(":")[-1]: tgt} if isinstance(tgt, str) else dict(tgt)
    opt["target"] = {k: v if v.startswith("sample:") or os.path.isabs(v) or "://" in v else str(p.parent / v)
                     for k, v in tgt.items()}
    opt.setdefault("components", list(mix.weights))
    opt.setdefault("seed", mix.seed)
    for k in ("n_init", "n_runs", "n_candidates", "eval_docs", "eval_chars"):
        if k in opt and opt[k] < 1:
            raise ConfigError(f"optimise.{k} must be >= 1")
    return mix, opt


def _raise(msg):
    raise ConfigError(msg)


def _objective(opt: dict, targets) -> str:
    obj = opt.get("objective") or (next(iter(targets)) if targets else None)
    if obj is None:
        raise ConfigError("optimise.target is required (the target set(s) the proxies are evaluated on)")
    return obj


def run_optimise(spec_path, out: str, *, train_fn=None) -> dict:
    """Proxy runs + optimiser per the spec; writes DIR (see the module docstring); returns the summary."""
    from lmsieve.io.inputs import Paths, load_docs
    from lmsieve.mixtures.mixing import natural_mixture, resolve_pool

    mix, opt = load_optimise(spec_path)
    if mix.unit != "tokens":
        raise ConfigError("mixture.unit must be 'tokens' for optimise (the proxy training budget)")
    obj = _objective(opt, opt["target"])
    comps = opt["components"]
    pool = None
    if train_fn is None:
        if not mix.pool:
            raise ConfigError("mixture.pool is required for optimise (the documents proxies train on)")
        pool, _ = load_docs(Paths(resolve_pool(mix.pool)), name="pool")
        targets = {k: load_docs(Paths(resolve_pool([v])), name=k)[0] for k, v in opt["target"].items()}
        train_fn = ProxyRunner(pool, targets, budget_tokens=mix.budget, component_column=mix.component_column,
                               seed=opt["seed"], eval_docs=opt.get("eval_docs", 64),
                               eval_chars=opt.get("eval_chars", 1024))
    natural = natural_mixture(pool, comps, mix.component_column) if pool is not None else None
    os.makedirs(out, exist_ok=True)
    table = RunTable(os.path.join(out, RUNS))
    res = optimise(train_fn, comps, obj, table, fidelities=opt["fidelities"], method=opt.get("method", "qlogei"),
                   mode=opt.get("mode", "pool"), n_init=opt.get("n_init", 4), n_runs=opt.get("n_runs", 10),
                   n_candidates=opt.get("n_candidates", 256), max_runs=opt.get("max_runs"), seed=opt["seed"],
                   prior=[natural[c] for c in comps] if natural else None)
    rec = res["recommended"]
    compared = {}
    if opt.get("compare", True):
        top = max(opt["fidelities"], key=lambda f: f.cost)
        for name, w in (("recommended", rec), ("uniform", {c: 1 / len(comps) for c in comps}),
                        ("natural", natural)):
            if w is not None:
                compared[name] = evaluate_mixture(train_fn, w, top, obj, table, seed=opt["seed"])
    others = {"uniform": {c: 1 / len(comps) for c in comps}}
    extra = {"method": res["method"], "mode": res["mode"], "target_fidelity": res["target_fidelity"],
             "loss_at_target_fidelity": compared,
             "gp_fit_failures": res.get("trace", {}).get("gp_fit_failures", [])}
    return _write(out, mix, table.rows, comps, obj, rec, natural, others, extra)


def recommend_runs(runs_path, out: str, *, spec_path=None, objective: str | None = None,
                   method: str = "gp") -> dict:
    """Fit the surrogate on a user-filled run table and recommend; writes DIR like optimise."""
    from lmsieve.io.parquet import read_parquet_file

    mix, opt = load_optimise(spec_path) if spec_path else (None, {})
    rows = read_parquet_file(os.fspath(runs_path)).to_pylist()
    comps = opt.get("components") or table_components(rows)
    losses = [c[5:] for c in (rows[0] if rows else {}) if c.startswith("loss_")]
    obj = objective or opt.get("objective") or (next(iter(opt["target"])) if opt.get("target") else None)
    if obj is None:
        if len(losses) != 1:
            raise ConfigError(f"{runs_path}: name the objective (--objective; loss columns: {', '.join(losses)})")
        obj = losses[0]
    if rows and f"loss_{obj}" not in rows[0]:
        raise InputError(f"no column 'loss_{obj}' (loss columns: {', '.join(losses)})", os.fspath(runs_path))
    for r in rows:  # the report reads these; a user table may lack them
        r.setdefault("fidelity", str(r.get("fidelity_cost")))
    res = recommend_from_table(rows, comps, obj, method=method, seed=opt.get("seed", 0), where=os.fspath(runs_path))
    extra = {"method": f"surrogate-{method}", "source": os.fspath(runs_path), "target_cost": res["target_cost"]}
    return _write(out, mix, rows, comps, obj, res["recommended"], None, {"uniform": {c: 1 / len(comps) for c in comps}},
                  extra)


def _write(out, mix, rows, comps, obj, rec, natural, others, extra) -> dict:
    from lmsieve.io.output import RunOutput
    from lmsieve.mixtures.report import write_report

    with RunOutput(out) as ro:
        summary = write_report(ro.tmp, rows=rows, components=comps, target=obj, recommended=rec, natural=natural,
                               others=others, extra=extra)
        files = ["summary.json", *summary["plots"].values()]
        with open(os.path.join(ro.tmp, "recommendation.json"), "w") as f:
            json.dump({"recommended": rec, "objective": obj, **extra}, f, indent=2)
        files.append("recommendation.json")
        if mix is not None:
            with open(os.path.join(ro.tmp, "recommended.toml"), "w") as f:
                f.write(recommended_toml(mix, rec))
            files.append("recommended.toml")
        for name in files:
            ro.path(name)
        ro.commit({"command": "mix optimise", "objective": obj, "components": comps, "recommended": rec,
                   "n_runs": len(rows), "files": sorted(files)})
    return summary


def recommended_toml(mix: MixtureSpec, rec: dict) -> str:
    """A ``[mixture]`` spec with the recommended weights and the original pool, budget and seed."""
    d = {**mix.to_dict(), "weights": {k: round(v, 6) for k, v in rec.items()}}
    lines = ["# written by `lmsieve mix optimise`; sample it with `lmsieve mix --spec recommended.toml --out DIR`",
             "[mixture]"]
    for k, v in d.items():
        if v is None or v == [] or v == ():
            continue
        lines.append(f"{k} = {_toml(v)}")
    return "\n".join(lines) + "\n"


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)
