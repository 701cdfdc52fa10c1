"""Windowed DSIR through a job spec (issue #16): a fitted window-mode DSIR is scored as a stored
score in the features job and selects the API's documents; without ``fitted`` the spec is refused
at load, naming the parameter, before any Beam work."""
import glob

import pyarrow.parquet as pq
import pytest

import lmsieve
from lmsieve.cli.main import main
from lmsieve.data import sample_path
from lmsieve.pipelines.jobspec import load_spec
from lmsieve.schemas.errors import ConfigError

SPEC = """
[inputs]
pool = "{d}/pool/*.parquet"
target = "{d}/t.parquet"
[features]
out = "{d}/feat"
[selection]
method = "dsir"
out = "{d}/sel"
keep = 20
seed = 4
params = {params}
[beam]
runner = "FnApiRunner"
"""


@pytest.fixture
def data(tmp_path):
    (tmp_path / "pool").mkdir()
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 200), tmp_path / "pool" / "p0.parquet",
                   row_group_size=64)
    pq.write_table(pq.read_table(sample_path("target_code_python.parquet")).slice(0, 20), tmp_path / "t.parquet")
    return tmp_path


def test_fitted_window_dsir_runs_from_a_job_spec(data):
    ref = lmsieve.select(str(data / "pool"), "dsir", str(data / "t.parquet"), keep=20, seed=4, unit="window",
                         save_fitted=str(data / "fitted"))
    spec = data / "spec.toml"
    spec.write_text(SPEC.format(d=data, params='{fitted = "%s"}' % (data / "fitted")))
    assert main(["run", str(spec)]) == 0
    assert glob.glob(str(data / "feat" / "*.dsir.parquet"))  # a stored score, not n-gram counts
    assert not glob.glob(str(data / "feat" / "*.dsir_ngrams.parquet"))
    got = sorted(i for f in glob.glob(str(data / "sel" / "selected-*.parquet"))
                 for i in pq.read_table(f).column("id").to_pylist())
    assert got == sorted(ref.column("id").to_pylist()) and len(got) == 20


def test_window_dsir_without_fitted_is_refused_at_load(data):
    spec = data / "spec.toml"
    spec.write_text(SPEC.format(d=data, params='{unit = "window"}'))
    with pytest.raises(ConfigError, match=r"selection\.params\.fitted: DSIR with unit = 'window'"):
        load_spec(str(spec))
    assert not (data / "feat").exists()
