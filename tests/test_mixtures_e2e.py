import pytest
"""Real end-to-end run on the shared pool: 4 domains, target heldout_code_python, tiny proxies."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _proxy_fixture import one_thread  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.mixtures.optimize import evaluate_mixture, optimise
from lmsieve.mixtures.runs import Fidelity, ProxyRunner, RunTable

DOMAINS = ["code_python", "literature", "dictionary"]
TINY = Fidelity("tiny", model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, steps=150, cost=1.0)


@pytest.mark.xfail(reason='open issue #8: the short end-to-end run recommends literature; proxy budget/fidelity pending', strict=False)
def test_optimiser_prefers_code_python_and_beats_uniform(tmp_path):
    pool = pool_slice(3000)
    pool = pool.filter(pc.is_in(pool.column("domain"), value_set=pa.array(DOMAINS)))
    runner = ProxyRunner(pool, {"heldout_code_python": target_set("heldout_code_python")},
                         budget_tokens=150_000, eval_docs=16, eval_chars=1024)
    table = RunTable(tmp_path / "runs.parquet")
    out = optimise(runner, DOMAINS, "heldout_code_python", table, fidelities=[TINY], n_init=4, n_steps=4)
    w = out["recommended"]
    assert abs(sum(w.values()) - 1) < 1e-6
    assert max(w, key=w.get) == "code_python" and w["code_python"] > 0.5
    uniform = evaluate_mixture(runner, {d: 1 / 3 for d in DOMAINS}, TINY, "heldout_code_python", table)
    rec = evaluate_mixture(runner, w, TINY, "heldout_code_python", table)
    assert rec < uniform
    # resumable: a second pass over the same table trains nothing new
    n = len(table.rows)
    table2 = RunTable(tmp_path / "runs.parquet")
    assert len(table2.rows) == n
    evaluate_mixture(lambda *a: (_ for _ in ()).throw(AssertionError("retrained")),
                     {d: 1 / 3 for d in DOMAINS}, TINY, "heldout_code_python", table2)
