"""Python API: every input form gives the same scores; selections are reproducible."""
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice, target_set

import lmsieve
from lmsieve.schemas.errors import ConfigError, InputError


def test_input_forms_agree(tmp_path):
    pool = pool_slice(200)
    target = target_set("heldout_math").slice(0, 40)
    pq.write_table(pool, tmp_path / "pool.parquet")
    pq.write_table(target, tmp_path / "target.parquet")
    ref = lmsieve.score(pool, "dsir", target)
    assert ref.shape == (200,) and np.isfinite(ref).all()
    np.testing.assert_array_equal(lmsieve.score(pool.to_pandas(), "dsir", target.to_pandas()), ref)
    np.testing.assert_array_equal(lmsieve.score(str(tmp_path / "pool.parquet"), "dsir", str(tmp_path / "t*.parquet")), ref)
    texts = pool.column("text").to_pylist()
    np.testing.assert_array_equal(lmsieve.score(texts, "dsir", target.column("text").to_pylist()), ref)


def test_select_reproducible_and_seeded():
    pool = pool_slice(500)
    target = target_set("heldout_literature").slice(0, 40)
    a = lmsieve.select(pool, "dsir", target, keep=50, seed=1)
    b = lmsieve.select(pool, "dsir", target, keep=50, seed=1)
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    # DSIR's log weights differ by hundreds of nats, so Gumbel noise rarely changes its picks; with
    # a flattening temperature the seed decides.
    c = lmsieve.select(pool, "dsir", target, keep=50, seed=1, temperature=1e4)
    d = lmsieve.select(pool, "dsir", target, keep=50, seed=2, temperature=1e4)
    assert set(c.column("id").to_pylist()) != set(d.column("id").to_pylist())
    assert a.column_names == pool.column_names


def test_empty_text_is_valid_and_scored():
    s = lmsieve.score(["", "some words here"], "dsir", ["some words"], pool_sample=["some text", "other words"])
    assert s[0] == 0.0 and np.isfinite(s[1])


def test_boundary_errors():
    with pytest.raises(ConfigError, match="unknown method"):
        lmsieve.score(["a"], "nope", ["a"])
    with pytest.raises(InputError, match="row 1"):
        lmsieve.score(["a", 3], "dsir", ["a"])
    with pytest.raises(ConfigError, match="keep"):
        lmsieve.select(["a b"], "dsir", ["a"], keep=1.5)
    with pytest.raises(ConfigError, match="empty"):
        lmsieve.score(["a"], "dsir", [])
