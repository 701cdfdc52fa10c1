"""Run a selector that was fitted once (``fitted=DIR``) through the Beam features + selection jobs.

Shared by the loss-selector tests (CoLoR-Filter, MATES, PreSelect): the pool is written as two
shards split at ``split``, the features job stores the fitted selector's scores, the selection job
cuts them, and the selected ids come back in input order for comparison with the API.
"""
import pyarrow.parquet as pq
from test_beam_select import selected_ids

from lmsieve.pipelines.features import ScoreFeature, hash_target_files, read_target, selector_class
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.options import make_options
from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job


def beam_select_fitted(root, method: str, fitted_dir: str, pool, target, split: int, budget, seed: int,
                       selector_kwargs: dict | None = None, **cfg_kwargs) -> list[str]:
    pq.write_table(target, root / "target.parquet")
    tpath = str(root / "target.parquet")
    (root / "pool").mkdir()
    pq.write_table(pool.slice(0, split), root / "pool" / "a.parquet")
    pq.write_table(pool.slice(split), root / "pool" / "b.parquet")
    fitted = selector_class(method)(fitted=fitted_dir, **(selector_kwargs or {})).fit(read_target([tpath]))
    assert not fitted.needs_pool_sample  # a fitted selector scores per document: it fans out
    opts = make_options(["--runner=FnApiRunner"])
    run_features_job(str(root / "pool"), str(root / "feat"), [ScoreFeature(fitted, hash_target_files([tpath]))],
                     options=opts, progress_secs=0)
    cfg = SelectionConfig(method=method, params={"fitted": fitted_dir}, budget=budget, seed=seed, num_quantiles=7,
                          **cfg_kwargs)
    m = run_selection_job(str(root / "pool"), str(root / "feat"), [tpath], str(root / "out"), cfg, options=opts,
                          progress_secs=0)
    return selected_ids(m, root / "out")
