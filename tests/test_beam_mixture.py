"""The [mixture] step in Beam draws exactly the sample `lmsieve mix` draws (same seed, same spec):
same ids, same per-component counts, sharded output in input order, manifest counts as data."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmsieve.mixtures.mixing import mix
from lmsieve.mixtures.spec import spec_from_dict
from lmsieve.pipelines import fileio
from lmsieve.pipelines.mixture_step import run_mixture_step
from lmsieve.pipelines.options import make_options

DOMAINS = ["code", "math", "web", "books"]


def _pool(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    dom = rng.choice(DOMAINS, size=n, p=[0.1, 0.2, 0.5, 0.2])
    texts = ["w" * int(k) + " é" * int(rng.integers(0, 3)) for k in rng.integers(5, 400, size=n)]
    score = np.round(rng.normal(size=n), 1)  # ties
    return pa.table({"id": [f"doc{i:05d}" for i in range(n)], "text": texts, "domain": dom, "q": score})


@pytest.mark.parametrize("extra", [
    {"unit": "tokens", "budget": 60_000},
    {"unit": "chars", "budget": 40_000, "ranking": "gumbel", "score_column": "q", "temperature": 0.5, "seed": 4},
    {"unit": "docs", "budget": 700, "ranking": "top", "score_column": "q", "redistribute": True, "seed": 1},
])
def test_beam_mixture_equals_lmsieve_mix(tmp_path, extra):
    pool = _pool(1500, 3)
    d = tmp_path / "pool"
    d.mkdir()
    pq.write_table(pool.slice(0, 700), d / "a.parquet", row_group_size=100)
    pq.write_table(pool.slice(700), d / "b.parquet", row_group_size=150)
    weights = {"code": 0.4, "math": 0.3, "web": 0.2, "books": 0.1} if not extra.get("redistribute") else \
        {"code": 0.7, "math": 0.2, "web": 0.1}
    spec = spec_from_dict({"weights": weights, **extra, "pool": [str(d / "a.parquet"), str(d / "b.parquet")]},
                          where="mixture")
    ref_rows, ref = mix(spec, str(tmp_path / "api"))
    killed = tmp_path / "beam" / ".tmp-beam-killed"  # what a killed mixture step leaves, with a stale output
    killed.mkdir(parents=True)
    (killed / "mixture-00000-of-00002.parquet").write_bytes(b"partial")
    (tmp_path / "beam" / "mixture-00007-of-00009.parquet").write_bytes(b"stale")
    old = fileio.UNIT_MAX_ROWS
    fileio.UNIT_MAX_ROWS = 200
    try:
        m = run_mixture_step({"out": str(tmp_path / "beam"), "spec": spec},
                             options=make_options(["--runner=FnApiRunner"]))
    finally:
        fileio.UNIT_MAX_ROWS = old
    files = sorted((tmp_path / "beam").glob("mixture-*.parquet"))
    assert [f.name for f in files] == ["mixture-00000-of-00002.parquet", "mixture-00001-of-00002.parquet"]
    got = pa.concat_tables([pq.read_table(f) for f in files])
    assert got.column("id").to_pylist() == ref_rows.column("id").to_pylist()
    assert got.equals(ref_rows.cast(got.schema))
    assert m["counts"]["components"] == ref["counts"]["components"]
    assert m["counts"]["selected"] == ref["counts"]["selected"] and m["counts"]["input"] == 1500
    # one manifest builder: the same keys and counts, each runner's own details under "runner"
    assert m["counts"] == ref["counts"] and m["command"] == ref["command"] == "mix"
    assert set(m) == set(ref) and {k for e in m["inputs"]["pool"] for k in e} == {k for e in ref["inputs"]["pool"]
                                                                                  for k in e}
    assert m["runner"]["engine"] == "apache-beam" and ref["runner"] == {"engine": "in-process"}
    assert json.loads((tmp_path / "beam" / "manifest.json").read_text())["outputs"] == m["outputs"]
    assert not list((tmp_path / "beam").glob(".tmp-beam-*"))
