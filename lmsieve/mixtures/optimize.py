"""End to end: optimise a mixture of pool components for a target with proxy runs (live mode).

Glue between :mod:`runs` (proxy training, resumable run table) and :mod:`bayesopt` (``live``);
every proxy run goes through the run table, so rerunning with the same table skips finished runs.
"""
from __future__ import annotations

import numpy as np

from lmsieve.mixtures import bayesopt as bo
from lmsieve.mixtures.runs import Fidelity, RunTable, run_or_skip


def optimise(train_fn, components: list, target: str, table: RunTable, *, fidelities: list, method: str = "qlogei",
             n_init: int = 6, n_steps: int = 10, seed: int = 0) -> dict:
    """Minimise ``loss_<target>`` over mixtures of ``components``; fidelity costs are ``Fidelity.cost``
    (the largest is the target fidelity). Returns the recommended weights and the run table rows."""
    by_cost = {float(f.cost): f for f in fidelities}
    target_cost = max(by_cost)

    def run_fn(w, cost):
        f = by_cost[min(by_cost, key=lambda c: abs(c - cost))]
        weights = {c: float(x) for c, x in zip(components, w)}
        return run_or_skip(table, train_fn, weights, f, seed)[f"loss_{target}"]

    out = bo.live(run_fn, len(components), n_init=n_init, n_steps=n_steps, method=method,
                  fidelities=tuple(sorted(by_cost)), target_fidelity=target_cost, seed=seed)
    rec = dict(zip(components, map(float, out["recommended"])))
    return {"recommended": rec, "runs": table.rows, "target_fidelity": by_cost[target_cost].name}


def evaluate_mixture(train_fn, weights: dict, fidelity: Fidelity, target: str, table: RunTable, seed: int = 0) -> float:
    return float(run_or_skip(table, train_fn, weights, fidelity, seed)[f"loss_{target}"])
