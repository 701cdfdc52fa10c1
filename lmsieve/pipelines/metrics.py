"""Beam counters and a rate-limited progress line for local runs.

Counters live in the ``lmsieve`` namespace: ``docs_read``, ``docs_invalid``, ``docs_featurized``,
``docs_scored``, ``docs_eligible``, ``docs_selected`` and ``docs_selected.<domain>`` (Dataflow shows
them live). They are for monitoring: *attempted* counters can double-count retried bundles, so the
manifest's counts are computed as data (a combine over the scored units), not read from metrics.

FnApiRunner only reports metrics at the end, so DoFns also print a progress line to stderr at most
every ``interval`` seconds per process: documents done, documents per second, current shard.
"""
from __future__ import annotations

import os
import sys
import time

NAMESPACE = "lmsieve"


def counter(name: str):
    from apache_beam.metrics import Metrics

    return Metrics.counter(NAMESPACE, name)


class Progress:
    """Per-process progress of one stage; ``tick(n, where)`` after each unit of work."""

    def __init__(self, stage: str, interval: float = 10.0):
        self.stage, self.interval = stage, float(interval)
        self._t0 = self._last = None
        self.done = 0

    def tick(self, n: int, where: str = "") -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = self._last = now
        self.done += int(n)
        if self.interval > 0 and now - self._last >= self.interval:
            self._last = now
            self.print(where)

    def print(self, where: str = "", final: bool = False) -> None:
        if self._t0 is None or self.interval <= 0:
            return
        dt = max(1e-9, time.monotonic() - self._t0)
        tail = f", {where}" if where else ""
        word = "done" if final else "so far"
        print(f"lmsieve[{self.stage}] pid {os.getpid()}: {self.done:,} docs {word}, {self.done / dt:,.0f} docs/s{tail}",
              file=sys.stderr, flush=True)


def query_counters(result) -> dict[str, int]:
    """Committed (or, where a runner has none, attempted) counters of the lmsieve namespace."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    try:
        res = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001 - some runners do not support metrics queries
        return out
    for c in res.get("counters", []):
        name = c.key.metric.name
        try:
            v = c.committed if c.committed is not None else c.attempted
        except Exception:  # noqa: BLE001 - committed is unsupported on some runners
            v = c.attempted
        out[name] = out.get(name, 0) + int(v or 0)
    return dict(sorted(out.items()))


__all__ = ["NAMESPACE", "Progress", "counter", "query_counters"]
