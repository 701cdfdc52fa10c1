"""A fake proxy trainer on real text (no LM): loss = −(mean share of letters in the selected text)."""
import numpy as np


def trainer(selected, evals, seed):
    t = "".join(selected.column("text").to_pylist()) or " "
    v = -sum(c.isalpha() for c in t) / len(t)
    return {"losses": {"target": v + 1e-3 * (seed % 7), "general": v}, "seconds": 0.0, "flops": 0.0}
