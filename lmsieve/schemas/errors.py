"""Errors raised at lmsieve's boundaries.

Every error about input data names the file (or the in-memory source) and, where one row is to
blame, the row, so a user can find the problem without a debugger.
"""
from __future__ import annotations


class LmsieveError(Exception):
    """Base class of lmsieve's own errors (the CLI prints them as one line, exit code 2)."""


class InputError(LmsieveError, ValueError):
    """Bad input data: names the source and, where known, the row."""

    def __init__(self, message: str, source: str | None = None, row: int | None = None):
        self.source = source
        self.row = row
        self.reason = message
        where = ""
        if source is not None:
            where = f"{source}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        # One line: the CLI prints it as such (Arrow's messages can span lines).
        super().__init__(where + " ".join(ln.strip() for ln in str(message).splitlines() if ln.strip()))


class ConfigError(LmsieveError, ValueError):
    """A bad parameter or job setting, named by its key."""
