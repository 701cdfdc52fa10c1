"""Meta-rater on the shared pool (slow): targeted at heldout_code_python with 32 real proxy runs, the
fitted weights beat uniform weights on the target half the search never saw. Takes ~15-25 min on a
loaded 2-core CPU (benchmarks/bench_meta_rater.py runs the same experiment and reports it)."""
import importlib.util
import os

import pytest
from conftest import REPO, SHARED_DATA, shared_available

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shared_available(), reason=f"shared data not at {SHARED_DATA}")]


def test_fitted_weights_beat_uniform_on_heldout_code_python(tmp_path):
    os.environ.setdefault("LMSIEVE_SHARED_DATA", str(SHARED_DATA))
    spec = importlib.util.spec_from_file_location("bench_meta_rater", REPO / "benchmarks" / "bench_meta_rater.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.experiment(32, 3000, "heldout_code_python", tmp_path)
    assert res["compare"]["fitted"]["test_loss"] < res["compare"]["uniform"]["test_loss"]
