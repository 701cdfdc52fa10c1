"""Shared fixtures: slices of the real shared pool and target sets.

The shared data lives beside the repository (``../shared/data``); set ``LMSIEVE_SHARED_DATA`` to
point elsewhere. Slices are deterministic: the first N rows of the pool shards in file order
(the pool is shuffled with a fixed seed, so every slice mixes all domains).

Tests that read it are marked ``shared_data`` (automatically, from what they call) and counted:
the run ends with how many ran on the shared data and how many were skipped without it, and how to
get it. The other tests run on data that ships with the repository (``lmsieve/data/sample``) or
that they generate. ``LMSIEVE_REQUIRE_SHARED_DATA=1`` turns the skips into failures (CI with data).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMSIEVE_SHARED_DATA", REPO.parent / "shared" / "data"))


SHARED_REASON = "needs the shared data"
HOW_TO_GET = ("put the shared data at ../shared/data beside the repository or set LMSIEVE_SHARED_DATA=DIR "
              "(DIR/pool/*.parquet and DIR/targets/*.parquet; see tests/README.md)")
_USED: set[str] = set()  # node ids of tests that read the shared data
_CURRENT: list = [None]


def shared_available() -> bool:
    return (SHARED_DATA / "pool").is_dir()


def _need_shared() -> None:
    if _CURRENT[0]:
        _USED.add(_CURRENT[0])
    if not shared_available():
        if os.environ.get("LMSIEVE_REQUIRE_SHARED_DATA"):
            pytest.fail(f"shared data not found at {SHARED_DATA} (LMSIEVE_REQUIRE_SHARED_DATA is set)")
        pytest.skip(f"{SHARED_REASON}: not found at {SHARED_DATA}")


@functools.lru_cache(maxsize=8)
def _pool_slice(n: int, columns: tuple[str, ...] | None) -> pa.Table:
    files = sorted((SHARED_DATA / "pool").glob("*.parquet"))
    parts, got = [], 0
    for f in files:
        t = pq.read_table(f, columns=list(columns) if columns else None)
        parts.append(t.slice(0, n - got))
        got += min(len(t), n - got)
        if got >= n:
            break
    return pa.concat_tables(parts).combine_chunks()


def pool_slice(n: int, columns: tuple[str, ...] | None = None) -> pa.Table:
    _need_shared()
    return _pool_slice(n, columns)


@functools.lru_cache(maxsize=16)
def _target(name: str) -> pa.Table:
    return pq.read_table(SHARED_DATA / "targets" / f"{name}.parquet")


def target_set(name: str) -> pa.Table:
    _need_shared()
    return _target(name)


@pytest.fixture
def pool_6k() -> pa.Table:
    return pool_slice(6000)


# -- marking and counting the shared-data tests ----------------------------------------------------
_TOKENS = ("pool_slice(", "target_set(", "SHARED_DATA", "pool_6k", "shared_available(")


def _source(obj) -> str:
    import inspect

    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


@functools.lru_cache(maxsize=None)
def _shared_names(module) -> frozenset:
    """Names of the module's functions (and imported helpers) that reach the shared data."""
    import inspect

    funcs = {n: _source(f) for n, f in vars(module).items() if inspect.isfunction(f)}
    names = {n for n, src in funcs.items() if any(t in src for t in _TOKENS)}
    changed = True
    while changed:  # helpers calling helpers
        changed = False
        for n, src in funcs.items():
            if n not in names and any(f"{m}(" in src for m in names):
                names.add(n)
                changed = True
    return frozenset(names)


def _uses_shared(item) -> bool:
    mod = getattr(item, "module", None)
    names = _shared_names(mod) if mod is not None else frozenset()
    sources = [_source(getattr(item, "function", None))]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        sources += [_source(d.func) for d in defs]
    marks = tuple(_TOKENS) + tuple(f"{n}(" for n in names)
    return any(any(t in src for t in marks) for src in sources)


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data: reads ../shared/data (LMSIEVE_SHARED_DATA); counted at the end")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _uses_shared(item):
            item.add_marker(pytest.mark.shared_data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _CURRENT[0] = item.nodeid
    try:
        yield
    finally:
        _CURRENT[0] = None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    shared = {i.nodeid for i in getattr(terminalreporter, "_lmsieve_items", [])} | _USED
    ran = skipped = other_ran = 0
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            if rep.when != "call":
                continue
            if rep.nodeid in shared:
                ran += 1
            else:
                other_ran += 1
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if SHARED_REASON in reason:
            skipped += 1
    deselected = len(terminalreporter.stats.get("deselected", []))
    if not (ran or skipped or other_ran):
        return
    tr = terminalreporter
    tr.section("lmsieve test data", sep="-")
    if deselected:
        tr.write_line(f"{deselected} tests deselected by -m (the slow real-data and real-model checks: "
                      f"`make test-slow` runs them)")
    tr.write_line(f"{other_ran} tests ran on data shipped with the repository or generated in the test")
    if shared_available():
        tr.write_line(f"{ran} tests ran on the shared data at {SHARED_DATA}")
    elif skipped:
        tr.write_line(f"{skipped} tests need the shared data and were SKIPPED: not found at {SHARED_DATA}")
        tr.write_line(f"to run them: {HOW_TO_GET}")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr._lmsieve_items = [i for i in session.items if i.get_closest_marker("shared_data")]
