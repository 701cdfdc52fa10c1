"""The spec's full check: MF-MES beats full-fidelity random search in ≥ 8 of 10 seeds (≈ 4 min)."""
import numpy as np
import pytest

from test_bayesopt import one_thread, random_regret, regret, run_mes  # noqa: F401


@pytest.mark.slow
def test_mf_mes_beats_random_8_of_10():
    wins = 0
    for seed in range(10):
        X, y, f1, tr = run_mes(seed, max_steps=25)
        wins += regret(X, f1, tr.recommended[-1]) < random_regret(X, y, f1, seed, 10)
    assert wins >= 8
