"""A fake proxy trainer for Meta-rater's synthetic check (spec §2 CPU tests): the "loss" of a proxy
trained on the selected documents is −(their mean hidden quality) + noise; hidden quality lives in
the pool's ``hidden`` column (= z3 + z17), which no rater reads."""
import numpy as np


def trainer(selected, evals, seed):
    q = np.asarray(selected.column("hidden").to_pylist(), dtype=np.float64)
    noise = np.random.Generator(np.random.PCG64(seed)).normal(0, 0.01, 2)
    return {"losses": {"target": float(-q.mean() + noise[0]), "general": float(-q.mean() + noise[1])},
            "seconds": 0.0, "flops": 0.0}
