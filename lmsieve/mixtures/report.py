"""Mixture reports: PNG plots (matplotlib, Agg) and a JSON summary.

* ``trace.png``: best target loss so far vs cumulative proxy cost (Σ fidelity costs, in run-table
  order), one step line per fidelity — the ADMIRE-BayesOpt view of "how much did finding it cost".
* ``weights.png``: recommended weights next to the natural mixture (each component's share of the
  pool's tokens) and, when given, other mixtures (e.g. uniform).
* ``meta_rater.png``: Meta-rater weights per quality feature (signed), when given.
* ``summary.json``: target, components, recommended / natural weights, number of runs, total cost,
  seconds and FLOPs, best loss per fidelity, plot paths, plus any ``extra`` keys.
"""
from __future__ import annotations

import json
import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trace_curves(rows: list, target: str) -> dict:
    """fidelity name -> (cumulative cost at each of its runs, best loss so far at that fidelity)."""
    cost = np.cumsum([float(r["fidelity_cost"]) for r in rows])
    out: dict = {}
    for name in dict.fromkeys(r["fidelity"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["fidelity"] == name]
        loss = np.minimum.accumulate([float(rows[i][f"loss_{target}"]) for i in idx])
        out[name] = (cost[idx].tolist(), loss.tolist())
    return out


def plot_trace(rows: list, target: str, path: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, (x, y)) in enumerate(trace_curves(rows, target).items()):
        ax.step(x, y, where="post", color=f"C{i}", marker="o", ms=3, label=f"fidelity {name}")
    ax.set_xlabel("cumulative proxy cost (Σ fidelity cost)")
    ax.set_ylabel(f"best loss_{target} so far")
    ax.set_title("Optimisation trace")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_weights(components: list, mixtures: dict, path: str, title: str = "Mixture weights") -> str:
    """Grouped bars: one group per component, one bar per named mixture (name -> {component: w})."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(components) + 2), 3.8))
    x = np.arange(len(components))
    width = 0.8 / max(1, len(mixtures))
    for i, (name, w) in enumerate(mixtures.items()):
        ax.bar(x + (i - (len(mixtures) - 1) / 2) * width, [w.get(c, 0.0) for c in components], width,
               label=name, color=f"C{i}")
    ax.set_xticks(x, components, rotation=30, ha="right")
    ax.set_ylabel("weight")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_meta_rater(names: list, weights, path: str) -> str:
    plt = _plt()
    w = np.asarray(weights, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.25 * len(names) + 1)))
    ax.barh(np.arange(len(names)), w, color=np.where(w >= 0, "C0", "C3"))
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("weight (signed)")
    ax.set_title("Meta-rater weights")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summarise(rows: list, components: list, target: str, recommended: dict, natural: dict | None = None) -> dict:
    by_fid: dict = {}
    for r in rows:
        d = by_fid.setdefault(r["fidelity"], {"runs": 0, "cost": float(r["fidelity_cost"]), "best_loss": np.inf})
        d["runs"] += 1
        d["best_loss"] = min(d["best_loss"], float(r[f"loss_{target}"]))
    return {"target": target, "components": list(components), "recommended": recommended, "natural": natural,
            "n_runs": len(rows), "total_cost": float(sum(float(r["fidelity_cost"]) for r in rows)),
            "total_seconds": float(sum(float(r.get("seconds", 0.0)) for r in rows)),
            "total_flops": float(sum(float(r.get("flops", 0.0)) for r in rows)), "by_fidelity": by_fid}


def write_report(out_dir: str, *, rows: list, components: list, target: str, recommended: dict,
                 natural: dict | None = None, others: dict | None = None, meta_rater: tuple | None = None,
                 extra: dict | None = None, prefix: str = "") -> dict:
    """Write the plots and ``summary.json`` into ``out_dir``; returns the summary.

    ``others``: more mixtures for the weights plot (name -> weights); ``meta_rater``: (names, weights)."""
    os.makedirs(out_dir, exist_ok=True)
    summary = summarise(rows, components, target, recommended, natural)
    plots = {}
    if rows:
        plots["trace"] = plot_trace(rows, target, os.path.join(out_dir, f"{prefix}trace.png"))
    mixtures = {"recommended": recommended, **({"natural": natural} if natural else {}), **(others or {})}
    plots["weights"] = plot_weights(components, mixtures, os.path.join(out_dir, f"{prefix}weights.png"))
    if meta_rater is not None:
        names, w = meta_rater
        plots["meta_rater"] = plot_meta_rater(list(names), w, os.path.join(out_dir, f"{prefix}meta_rater.png"))
        summary["meta_rater_weights"] = dict(zip(names, map(float, w)))
    summary["plots"] = {k: os.path.basename(v) for k, v in plots.items()}
    summary.update(extra or {})
    path = os.path.join(out_dir, f"{prefix}summary.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, default=float)
        f.write("\n")
    os.replace(tmp, path)
    return summary
