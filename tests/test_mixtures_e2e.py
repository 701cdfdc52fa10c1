"""Real end-to-end run on the shared pool: 3 domains, target heldout_code_python, tiny proxies.

A real (short) run: byte-level 1-layer proxies (width 32, context 64) trained 50 steps on each
queried mixture, target loss on 64 held-out Python files (first 1,024 characters each), qLogEI
replaying a pool of candidate mixtures (vertices, uniform, 64 Dirichlet) with 3 initial runs and
8 runs in all. The benchmark (benchmarks/bench_mixture.py) runs the same with more steps.
"""
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _proxy_fixture import one_thread  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.mixtures.optimize import evaluate_mixture, optimise
from lmsieve.mixtures.runs import Fidelity, ProxyRunner, RunTable

DOMAINS = ["code_python", "literature", "dictionary"]
TINY = Fidelity("tiny", model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, steps=50, cost=1.0)


@pytest.mark.usefixtures("one_thread")  # torch on one thread: two would wait on each other on a shared box
def test_optimiser_prefers_code_python_and_beats_uniform(tmp_path):
    pool = pool_slice(3000)
    pool = pool.filter(pc.is_in(pool.column("domain"), value_set=pa.array(DOMAINS)))
    runner = ProxyRunner(pool, {"heldout_code_python": target_set("heldout_code_python")},
                         budget_tokens=60_000, eval_docs=64, eval_chars=1024)
    table = RunTable(tmp_path / "runs.parquet")
    out = optimise(runner, DOMAINS, "heldout_code_python", table, fidelities=[TINY], method="qlogei", n_init=3,
                   n_runs=8, n_candidates=64)
    w = out["recommended"]
    assert len(table.rows) == 8 and out["trace"]["cum_cost"][-1] == pytest.approx(8.0)
    assert abs(sum(w.values()) - 1) < 1e-6 and min(w.values()) >= 0
    assert max(w, key=w.get) == "code_python" and w["code_python"] > 0.5
    uniform = evaluate_mixture(runner, {d: 1 / 3 for d in DOMAINS}, TINY, "heldout_code_python", table)
    rec = evaluate_mixture(runner, w, TINY, "heldout_code_python", table)
    assert rec < uniform - 0.05  # nats/byte; seed-to-seed noise at this size is about 0.03-0.07
    # resumable: a second pass over the same table trains nothing new
    n = len(table.rows)
    table2 = RunTable(tmp_path / "runs.parquet")
    assert len(table2.rows) == n
    evaluate_mixture(lambda *a: (_ for _ in ()).throw(AssertionError("retrained")),
                     {d: 1 / 3 for d in DOMAINS}, TINY, "heldout_code_python", table2)
