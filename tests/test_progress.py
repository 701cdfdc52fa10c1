"""Progress: bars move at the granularity of the work (counted, on a fake clock), logs and timings."""
from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest

from lmsieve import progress
from lmsieve.api import fit_and_score, make_selector, score_table
from lmsieve.data import sample  # noqa: F401  (the bundled sample ships with the package)

SAMPLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"


class FakeClock:
    """Time advances only when told: each document processed costs ``cost`` fake seconds."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake_clock():
    clock = FakeClock()
    progress.configure(clock=clock)
    yield clock
    import time

    progress.configure(clock=time.monotonic)


def _pool(n=None):
    t = pq.read_table(SAMPLE / "pool.parquet")
    return t if n is None else t.slice(0, n)


def test_dsir_fit_on_small_pool_updates_at_least_every_n_seconds(fake_clock):
    """Fit+score DSIR on the bundled pool; each document "costs" 0.05 fake s (so the whole run is
    minutes of fake time); the gap between updates must stay under 5 fake seconds."""
    pool = _pool()
    target = pq.read_table(SAMPLE / "target_code_python.parquet")
    cost, events = 0.05, []

    def hook(ev):
        fake_clock.t = ev.n * cost  # the work done so far, in fake seconds
        events.append((fake_clock.t, ev.n, ev.total, ev.final))

    with progress.hooks(hook):
        sel, s, e = fit_and_score("dsir", target, pool)
    assert len(s) == pool.num_rows
    times = [t for t, *_ in events]
    assert events[-1][3] and events[-1][1] == pool.num_rows  # the bar closed at the total
    gaps = np.diff([0.0] + times)
    assert gaps.max() <= 5.0, f"no update for {gaps.max():.1f} fake seconds ({len(events)} updates, {pool.num_rows} docs)"


def test_scoring_loop_updates_at_least_50_times_on_a_short_pool():
    pool = _pool(400)
    target = pq.read_table(SAMPLE / "target_code_python.parquet").slice(0, 3)
    sel = make_selector("zipfit").fit(target)
    n_events = []
    with progress.hooks(lambda ev: n_events.append(ev.n)):
        s, e = score_table(sel, pool)
    assert len(s) == 400
    steps = np.diff([0] + n_events)
    assert steps.max() <= 64  # documents between two updates
    assert n_events[-1] == 400 and len(n_events) >= 7


def test_non_tty_logs_one_line_per_interval_with_eta(fake_clock, caplog):
    progress.configure(force_tty=False)
    try:
        with caplog.at_level(logging.INFO, logger="lmsieve.progress"):
            with progress.bar(total=1000, desc="scoring (x)", unit="doc", enabled=True, log_every=10) as bar:
                for _ in range(100):
                    fake_clock.t += 1.0  # one fake second per 10 documents
                    bar.update(10)
    finally:
        progress.configure(force_tty=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "lmsieve.progress"]
    # 100 fake seconds, a line every 10 s, plus the final one
    assert len(lines) == 11, lines
    assert lines[0] == "scoring (x): 100/1,000 doc (10%), 10.0 doc/s, ETA 1m30s"
    assert lines[-1].endswith("done in 1m40s")


def test_disabled_bar_prints_nothing_but_hooks_still_count(capsys, caplog):
    seen = []
    with caplog.at_level(logging.INFO, logger="lmsieve.progress"), progress.hooks(seen.append):
        with progress.bar(total=3, desc="x", enabled=False) as bar:
            for _ in range(3):
                bar.update()
    assert [e.n for e in seen] == [1, 2, 3, 3] and seen[-1].final
    assert not [r for r in caplog.records if r.name == "lmsieve.progress"]
    assert capsys.readouterr().err == ""


def test_step_logs_time_and_throughput(fake_clock, caplog):
    with caplog.at_level(logging.INFO, logger="lmsieve.timing"):
        with progress.step("fit (dsir)", items=2000):
            fake_clock.t += 4.0
    assert "fit (dsir): 4.00 s, 500.0 doc/s (2,000 doc)" in caplog.text


def test_cli_verbose_and_log_file(tmp_path):
    """`-v --log-file` keeps the step timings; select also writes OUT/lmsieve.log."""
    import subprocess
    import sys

    log = tmp_path / "run.log"
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "lmsieve.cli.main", "-v", "--log-file", str(log), "select",
                        "--method", "dsir", "--target", str(SAMPLE / "target_code_python.parquet"),
                        "--pool", str(SAMPLE / "pool.parquet"), "--keep", "10", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "fit and score (dsir):" in r.stderr and "doc/s" in r.stderr
    assert "fit and score (dsir):" in log.read_text()
    assert "fit and score (dsir):" in (out / "lmsieve.log").read_text()


def test_proxy_training_inside_a_fit_reports_every_step():
    """Proxy training (CoLoR-Filter's and MATES's fits) ticks once per optimizer step, even when the
    caller did not ask for a bar (the process default decides what is shown)."""
    from lmsieve.features.proxy_lm import train_proxy

    texts = _pool(60).column("text").to_pylist()
    events = []
    with progress.hooks(events.append):
        train_proxy(texts, {"n_layer": 1, "d_model": 32, "n_head": 2, "context": 32},
                    {"steps": 12, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "seed": 0}, {"kind": "byte"})
    steps = [e for e in events if e.desc == "train-proxy" and not e.final]
    assert [e.n for e in steps] == list(range(1, 13)) and all(e.total == 12 for e in steps)
