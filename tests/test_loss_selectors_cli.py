"""``lmsieve select --method preselect|color|mates``: fit once (``--save-fitted``), score many times
(``--param fitted=DIR``); the CLI's selection equals the API's with the same seed."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from conftest import pool_slice, target_set

from lmsieve.api import run_selection
from lmsieve.cli.main import main
from lmsieve.sampling.select import Budget
from lmsieve.selectors.preselect import PreSelect


def test_select_with_fitted_preselect_matches_api_and_save_fitted_round_trips(tmp_path, capsys):
    t = pool_slice(1500)
    pool = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, 30) for d in ("code_python", "legal")])
    pool = pool.select(["id", "text", "domain"])
    is_code = np.array(pool.column("domain").to_pylist()) == "code_python"
    losses = np.where(is_code[:, None], [[3.0, 2.0, 1.0]], [[1.0, 2.0, 3.0]])
    sel = PreSelect(bucket=20_000, dim=16, seed=1).fit_from_losses(pool.column("text").to_pylist(), losses, [1, 2, 3],
                                                                  pool.column("id").to_pylist())
    fitted = sel.save(tmp_path / "fitted")
    pq.write_table(pool, tmp_path / "pool.parquet")
    pq.write_table(target_set("heldout_code_python").slice(0, 5), tmp_path / "target.parquet")
    args = ["select", "--method", "preselect", "--target", tmp_path / "target.parquet", "--pool", tmp_path / "pool.parquet",
            "--keep-chars-fraction", "0.3", "--seed", "3", "--param", f"fitted={fitted}", "--no-progress"]
    assert main([str(a) for a in args + ["--out", tmp_path / "out", "--save-fitted", tmp_path / "again"]]) == 0
    got = pq.read_table(tmp_path / "out" / "selected-00000-of-00001.parquet").column("id").to_pylist()
    ref = run_selection(sel, pool, Budget(length_fraction=0.3), seed=3).selected.column("id").to_pylist()
    assert got == ref and len(got) > 0
    assert np.mean([i in set(pool.filter(pa.array(is_code)).column("id").to_pylist()) for i in got]) >= 0.9
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["method"] == "preselect"
    # the state saved by --save-fitted scores the same
    assert (tmp_path / "again" / "preselect.bin").is_file()
    np.testing.assert_array_equal(PreSelect.load(tmp_path / "again").score(pool), sel.score(pool))
    capsys.readouterr()
    try:
        main(["select", "--help"])
    except SystemExit:
        pass
    assert "--param fitted=" in capsys.readouterr().out
