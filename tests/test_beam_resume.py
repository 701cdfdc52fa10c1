"""The features job resumes: a job that dies on one shard keeps the shards it finished; a rerun
computes only the rest, and the side files are byte-identical to a clean run's."""
import os

import pyarrow.parquet as pq
import pytest
from conftest import pool_slice

from lmsieve.pipelines.features import NgramFeature
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.options import make_options


def _opts():
    return make_options(["--runner=FnApiRunner"])


def _files(d) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))}


def test_killed_features_job_resumes_without_recomputing(tmp_path):
    pool = pool_slice(480)
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    for i in range(4):
        pq.write_table(pool.slice(i * 120, 120), pool_dir / f"shard-{i}.parquet", row_group_size=40)
    feats = [NgramFeature()]

    clean = tmp_path / "clean"
    run_features_job(str(pool_dir), str(clean), feats, options=_opts(), progress_secs=0)

    resumed = tmp_path / "resumed"
    with pytest.raises(Exception, match="injected failure on shard shard-3"):
        run_features_job(str(pool_dir), str(resumed), feats, options=_opts(), progress_secs=0,
                         fail_on_shard="shard-3")
    done = sorted(os.listdir(resumed))
    # shards are processed in order on FnApiRunner: 0-2 were committed, 3 was not, and no
    # temporary file is left under a final name
    assert done == [f"shard-{i}.{f}.parquet" for i in range(3) for f in ("docs", "dsir_ngrams")]
    before = {n: os.stat(resumed / n) for n in done}

    rep = run_features_job(str(pool_dir), str(resumed), feats, options=_opts(), progress_secs=0)
    assert rep.skipped == {"docs": 3, "dsir_ngrams": 3}
    assert rep.computed == {"docs": 1, "dsir_ngrams": 1}
    assert rep.docs == 120  # only the missing shard was read
    for n, st in before.items():  # finished shards were not rewritten
        now = os.stat(resumed / n)
        assert (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    assert _files(resumed) == _files(clean)

    # a third run has nothing to do; a changed parameter recomputes that feature only
    rep = run_features_job(str(pool_dir), str(resumed), feats, options=_opts(), progress_secs=0)
    assert rep.computed == {"docs": 0, "dsir_ngrams": 0}
    rep = run_features_job(str(pool_dir), str(resumed), [NgramFeature(num_buckets=4096)], options=_opts(),
                           progress_secs=0)
    assert rep.computed == {"docs": 0, "dsir_ngrams": 4}
