"""Silence library messages that tell an lmsieve user nothing they can act on (at one place).

* Beam's ``apitools not found, and bigquery client libraries are not available``: logged on the root
  logger when ``apache_beam.io.gcp`` is imported without the GCP extras; lmsieve never uses
  BigQuery, so the line is noise on every ``lmsieve run``.
* ``torch.jit.script/trace is deprecated``: raised inside third-party model code, not ours.
* setuptools' licence-table deprecation was fixed at the source (``license`` is an SPDX string in
  pyproject.toml).

Only these exact messages are filtered; every other warning still shows.
"""
from __future__ import annotations

import logging
import warnings

_LOG_NOISE = ("apitools not found",)


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = str(record.msg)
        except Exception:  # noqa: BLE001 - never break logging
            return True
        return not msg.startswith(_LOG_NOISE)


_installed = False


def silence_library_noise() -> None:
    """Install the filters (idempotent; cheap; standard library only)."""
    global _installed
    if _installed:
        return
    _installed = True
    logging.getLogger().addFilter(_NoiseFilter())
    warnings.filterwarnings("ignore", message=r"`?torch\.jit\.(script|trace)`? is (deprecated|not supported)")
    warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*License classifiers are deprecated")
    warnings.filterwarnings("ignore", message=r".*`project\.license` as a TOML table is deprecated")


__all__ = ["silence_library_noise"]
