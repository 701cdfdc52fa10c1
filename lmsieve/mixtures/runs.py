"""Proxy runs: train a proxy LM on a sampled mixture at a fidelity, evaluate target losses, and keep
every result in a resumable run table (Parquet).

Run table columns: ``run_id`` (stable hash of rounded weights, fidelity name and seed), ``w_<comp>``
per component, ``fidelity`` (name), ``fidelity_cost`` (relative cost, the optimiser's fidelity
value), ``seconds``, ``flops`` (≈ 6 · params · training tokens), ``seed``, ``loss_<target>``
(micro-averaged NLL per byte token). Rerunning skips runs whose ``run_id`` is already in the table.
A user with their own cluster passes ``train_fn`` (a callback with the same signature as
:meth:`ProxyRunner.__call__`) or fills the table with these columns themselves.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmsieve.mixtures.sampler import sample_mixture
from lmsieve.sampling.hashing import stable_hash64


@dataclass(frozen=True)
class Fidelity:
    """A proxy size and step count; ``cost`` is its relative cost (the target fidelity has cost 1)."""
    name: str
    model: dict = field(default_factory=lambda: {"n_layer": 2, "d_model": 64, "n_head": 4, "context": 128})
    steps: int = 100
    batch_size: int = 16
    lr: float = 3e-3
    cost: float = 1.0


def run_id(weights: dict, fidelity: str, seed: int) -> str:
    key = json.dumps({"w": {k: round(float(v), 6) for k, v in sorted(weights.items())}, "f": fidelity, "s": seed},
                     sort_keys=True)
    return f"{int(stable_hash64(0, [key])[0]):016x}"


class RunTable:
    """Append-only Parquet run table (rewritten atomically on each append)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.rows: list[dict] = pq.read_table(self.path).to_pylist() if os.path.exists(self.path) else []

    def done(self) -> set:
        return {r["run_id"] for r in self.rows}

    def append(self, row: dict) -> None:
        self.rows.append(row)
        tmp = self.path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows), tmp)
        os.replace(tmp, self.path)

    def arrays(self, components, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights (n, K), fidelity cost (n,), target loss (n,)) for the optimiser."""
        W = np.array([[r.get(f"w_{c}", 0.0) for c in components] for r in self.rows], dtype=np.float64)
        f = np.array([r["fidelity_cost"] for r in self.rows], dtype=np.float64)
        y = np.array([r[f"loss_{target}"] for r in self.rows], dtype=np.float64)
        return W.reshape(len(self.rows), len(components)), f, y


class ProxyRunner:
    """Trains lmsieve proxy LMs on mixtures of ``pool`` (a table with id/text/component columns)."""

    def __init__(self, pool: pa.Table, targets: dict, *, budget_tokens: float, component_column: str = "domain",
                 seed: int = 0, eval_docs: int = 64, eval_chars: int = 2048):
        self.pool, self.targets, self.budget = pool, targets, float(budget_tokens)
        self.col, self.seed = component_column, seed
        import pyarrow.compute as pc

        from lmsieve.mixtures.mixing import token_lengths

        self.lengths = token_lengths(pool.column("text"))
        # target loss on the first ``eval_chars`` characters of the first ``eval_docs`` documents
        self.eval = {k: pc.utf8_slice_codeunits(v.column("text").slice(0, eval_docs), 0, eval_chars)
                     for k, v in targets.items()}

    def __call__(self, weights: dict, fidelity: Fidelity, seed: int) -> dict:
        from lmsieve.features.proxy_lm.losses import document_losses
        from lmsieve.features.proxy_lm.train import train_proxy

        t0 = time.perf_counter()
        s = sample_mixture(self.pool.column("id"), self.pool.column(self.col), self.lengths, weights, self.budget,
                           seed=seed, redistribute=True)
        texts = self.pool.column("text").take(pa.array(s.indices))
        lm = train_proxy(texts, model=fidelity.model, tokenizer={"kind": "byte"},
                         train={"steps": fidelity.steps, "batch_size": fidelity.batch_size, "lr": fidelity.lr,
                                "seed": seed, "warmup_steps": min(20, fidelity.steps // 5)})
        params = sum(p.numel() for p in lm.model.parameters())
        tokens = fidelity.steps * fidelity.batch_size * (lm.context + 1)
        losses = {}
        for name, tab in self.eval.items():
            r = document_losses(lm, tab)
            losses[name] = float(r.total_nll.sum() / max(1, r.n_bytes.sum()))  # nats per byte, any tokenizer
        return {"losses": losses, "seconds": time.perf_counter() - t0, "flops": 6.0 * params * tokens}


def run_or_skip(table: RunTable, train_fn, weights: dict, fidelity: Fidelity, seed: int) -> dict:
    """Run one proxy unless the table has it; return its row."""
    rid = run_id(weights, fidelity.name, seed)
    for r in table.rows:
        if r["run_id"] == rid:
            return r
    res = train_fn(weights, fidelity, seed)
    row = {"run_id": rid, **{f"w_{k}": float(v) for k, v in weights.items()}, "fidelity": fidelity.name,
           "fidelity_cost": float(fidelity.cost), "seconds": float(res["seconds"]), "flops": float(res["flops"]),
           "seed": int(seed), **{f"loss_{k}": float(v) for k, v in res["losses"].items()}}
    table.append(row)
    return row
