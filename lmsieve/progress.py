"""Progress with an ETA on every long loop, step timings, and where both go (one place for all).

Loops count documents or tokens (or training steps) at the granularity their work happens::

    from lmsieve import progress

    with progress.bar(total=len(pool), desc="scoring (dsir)", unit="doc") as bar:
        for batch in batches:
            ...
            bar.update(batch.num_rows)

    with progress.step("fit (color)", items=len(pool), unit="doc"):   # -v: "fit (color): 12.3 s, 48.7 doc/s"
        sel.fit(...)

Display (decided per bar when it opens):

* disabled (``enabled=False``, or ``None`` while :func:`configure` left the default off): nothing is
  printed; hooks still see every update;
* enabled, stderr a terminal: a tqdm bar with rate and ETA, redrawn at most every ``refresh`` s;
* enabled, stderr not a terminal (CI, ``nohup``, a log file): no bar; one INFO line on the
  ``lmsieve.progress`` logger every ``log_every`` s (``desc: 1,200/5,000 doc (24%), 35.1 doc/s,
  ETA 1m48s``) and one at the end.

The CLI turns progress on (``--no-progress`` turns it off), sets the log level (``-v``: step timings
and throughput) and adds ``--log-file``. Library code passes ``enabled=None`` so nested loops
(proxy training inside a fit) follow the caller's choice without threading a flag through.

Tests: :func:`configure` takes ``clock=`` (a fake clock) and :func:`hooks` records every update as a
:class:`ProgressEvent`, so "updates at least every N seconds" is checked without timing anything.

This module imports only the standard library (and tqdm lazily): it sits at the bottom of the
import graph, so any layer may use it.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

log = logging.getLogger("lmsieve.progress")
timing_log = logging.getLogger("lmsieve.timing")


@dataclass(frozen=True)
class ProgressEvent:
    """One update of one bar: what it counts, how far, and when (by the configured clock)."""

    desc: str
    unit: str
    n: int
    total: int | None
    time: float  # clock reading at this update
    elapsed: float  # since the bar opened
    final: bool = False

    @property
    def rate(self) -> float:
        return self.n / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.total or self.n <= 0 or self.elapsed <= 0:
            return None
        return max(0.0, (self.total - self.n) / self.rate)


class _Config:
    enabled: bool = False  # what enabled=None means (the CLI sets it True)
    clock: Callable[[], float] = time.monotonic
    refresh: float = 0.5  # terminal bar: seconds between redraws
    log_every: float = 30.0  # no terminal: seconds between log lines
    force_tty: bool | None = None  # tests: pretend stderr is (not) a terminal
    hooks: list = []


_cfg = _Config()


def configure(*, enabled: bool | None = None, clock: Callable[[], float] | None = None, refresh: float | None = None,
              log_every: float | None = None, force_tty: bool | None = None) -> None:
    """Set process-wide defaults (only the arguments given change)."""
    if enabled is not None:
        _cfg.enabled = bool(enabled)
    if clock is not None:
        _cfg.clock = clock
    if refresh is not None:
        _cfg.refresh = float(refresh)
    if log_every is not None:
        _cfg.log_every = float(log_every)
    if force_tty is not None:
        _cfg.force_tty = force_tty


def enabled_default() -> bool:
    return _cfg.enabled


@contextlib.contextmanager
def hooks(fn: Callable[[ProgressEvent], None]) -> Iterator[None]:
    """Call ``fn(event)`` on every update of every bar opened inside the block (also when disabled)."""
    _cfg.hooks.append(fn)
    try:
        yield
    finally:
        _cfg.hooks.remove(fn)


def _fmt_secs(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def describe(ev: ProgressEvent) -> str:
    """``desc: 1,200/5,000 doc (24%), 35.1 doc/s, ETA 1m48s`` (the log line of an event)."""
    done = f"{ev.n:,}/{ev.total:,} {ev.unit} ({ev.n / ev.total:.0%})" if ev.total else f"{ev.n:,} {ev.unit}"
    tail = f"done in {_fmt_secs(ev.elapsed)}" if ev.final else f"ETA {_fmt_secs(ev.eta)}"
    return f"{ev.desc}: {done}, {ev.rate:,.1f} {ev.unit}/s, {tail}"


class Bar:
    """A progress counter; use :func:`bar` to make one. ``update(n)`` after each unit of work."""

    def __init__(self, total: int | None, desc: str, unit: str = "doc", enabled: bool | None = None,
                 log_every: float | None = None):
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.enabled = _cfg.enabled if enabled is None else bool(enabled)
        self.log_every = _cfg.log_every if log_every is None else float(log_every)
        self.n = 0
        self.t0 = self._last_log = _cfg.clock()
        self._closed = False
        self._tqdm = None
        tty = _cfg.force_tty if _cfg.force_tty is not None else _stderr_is_tty()
        if self.enabled and tty:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self.total, desc=desc, unit=unit, mininterval=_cfg.refresh, smoothing=0.1,
                              dynamic_ncols=True, file=sys.stderr)

    def _event(self, final: bool = False) -> ProgressEvent:
        now = _cfg.clock()
        return ProgressEvent(self.desc, self.unit, self.n, self.total, now, now - self.t0, final)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += int(n)
        if self._tqdm is not None:
            self._tqdm.update(int(n))
        if not (_cfg.hooks or (self.enabled and self._tqdm is None)):
            return
        ev = self._event()
        for fn in list(_cfg.hooks):
            fn(ev)
        if self.enabled and self._tqdm is None and ev.time - self._last_log >= self.log_every:
            self._last_log = ev.time
            log.info(describe(ev))

    def set_postfix(self, **kw) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix(**kw)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ev = self._event(final=True)
        for fn in list(_cfg.hooks):
            fn(ev)
        if self._tqdm is not None:
            self._tqdm.close()
        if self._tqdm is None and self.enabled and ev.elapsed >= self.log_every:  # short loops stay quiet
            log.info(describe(ev))
        else:  # -v (and log files): the loop's time and throughput
            timing_log.info(describe(ev))

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bar(total: int | None = None, desc: str = "", unit: str = "doc", enabled: bool | None = None,
        log_every: float | None = None) -> Bar:
    """A progress bar over ``total`` units (``None``: unknown; the ETA is then "?")."""
    return Bar(total, desc, unit, enabled, log_every)


@contextlib.contextmanager
def step(name: str, items: int | None = None, unit: str = "doc") -> Iterator[dict]:
    """Time a step; log ``name: 12.3 s, 1,234.5 doc/s`` at INFO on ``lmsieve.timing`` (``-v``).

    The yielded dict may be updated with ``items`` when the count is known only at the end."""
    info = {"items": items}
    t0 = _cfg.clock()
    timing_log.debug("%s: started", name)
    try:
        yield info
    finally:
        dt = _cfg.clock() - t0
        k = info.get("items")
        rate = f", {k / dt:,.1f} {unit}/s ({k:,} {unit})" if k and dt > 0 else ""
        timing_log.info("%s: %.2f s%s", name, dt, rate)


def setup_logging(verbose: bool = False, log_file: str | None = None) -> None:
    """The CLI's logging: warnings always; progress lines (non-terminal runs) always; step timings
    and details with ``verbose``; everything at INFO and above also to ``log_file``."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_lmsieve", False):
            root.removeHandler(h)
            h.close()
    console = logging.StreamHandler(sys.stderr)
    console._lmsieve = True
    console.setFormatter(fmt)
    console.setLevel(logging.INFO)
    root.addHandler(console)
    _saved_levels.setdefault("root", root.level)
    root.setLevel(logging.INFO)
    logging.getLogger("lmsieve").setLevel(logging.INFO)
    # Progress lines reach the console without -v (they are the only output of a long silent step).
    console.addFilter(lambda r: verbose or r.levelno >= logging.WARNING or r.name == log.name)
    if log_file:
        add_log_file(log_file)
    for noisy in ("apache_beam", "urllib3", "fsspec", "filelock", "httpx", "huggingface_hub", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_saved_levels: dict = {}


def teardown_logging() -> None:
    """Remove (and close) the handlers :func:`setup_logging` and :func:`add_log_file` added."""
    root = logging.getLogger()
    if "root" in _saved_levels:
        root.setLevel(_saved_levels.pop("root"))
    for h in list(root.handlers):
        if getattr(h, "_lmsieve", False):
            root.removeHandler(h)
            h.close()


def add_log_file(path: str) -> logging.Handler | None:
    """Also keep INFO and above (progress, timings, warnings) in ``path`` (appending)."""
    import os

    root = logging.getLogger()
    path = os.path.abspath(path)
    for h in root.handlers:
        if getattr(h, "_lmsieve_file", None) == path:
            return h
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    h = logging.FileHandler(path)
    h._lmsieve = True
    h._lmsieve_file = path
    h.setLevel(logging.INFO)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    return h


__all__ = ["Bar", "ProgressEvent", "add_log_file", "bar", "configure", "describe", "enabled_default", "hooks",
           "setup_logging", "step", "teardown_logging"]
