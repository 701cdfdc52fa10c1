"""fastText supervised classifiers trained reproducibly, shared by BETR and PreSelect.

Training runs in a fresh Python interpreter with ``thread=1`` and the caller's seed, then the
saved ``.bin`` is loaded here. Why: in one long-lived process (a test session, a notebook),
repeated ``fasttext.train_supervised`` calls with the same seed and one thread gave different
models, and once "Encountered NaN", while the first training of a fresh process is
reproducible. A failed training (NaN included) raises :class:`FastTextTrainError` with
fastText's own message.

Labelled lines are ``__label__<y> <text>`` with newlines and other whitespace runs collapsed to
one space (:func:`fasttext_line`, fastText reads one example per line).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from lmsieve.schemas.errors import LmsieveError

_TRAIN_SCRIPT = """
import json, sys, fasttext
m = fasttext.train_supervised(input=sys.argv[1], thread=1, verbose=0, **json.loads(sys.argv[3]))
m.save_model(sys.argv[2])
"""


class FastTextTrainError(LmsieveError, RuntimeError):
    pass


def fasttext_line(text: str) -> str:
    """One fastText example line: every whitespace run (newlines included) becomes one space."""
    return " ".join(text.split())


def train_fasttext(path: str, args: dict):
    """Train on the labelled file ``path`` in a fresh interpreter (``thread=1``; pass ``seed`` in
    ``args``) and load the result, saved as ``path + ".bin"``."""
    import fasttext

    out = path + ".bin"
    proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, path, out, json.dumps(args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise FastTextTrainError(f"fastText training failed ({last})")
    return fasttext.load_model(out)


def train_classifier(texts: list[str], labels: list[str], args: dict):
    """A classifier over ``texts`` with labels ``__label__<labels[i]>``, lines in the given order."""
    with tempfile.TemporaryDirectory(prefix="lmsieve-fasttext-") as d:
        path = os.path.join(d, "train.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(f"__label__{y} {fasttext_line(t)}\n" for t, y in zip(texts, labels))
        return train_fasttext(path, args)


def model_to_bytes(model) -> bytes:
    """The ``.bin`` file of a fastText model (to pickle it for Beam workers)."""
    with tempfile.TemporaryDirectory(prefix="lmsieve-fasttext-") as d:
        path = os.path.join(d, "model.bin")
        model.save_model(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(blob: bytes):
    import fasttext

    with tempfile.TemporaryDirectory(prefix="lmsieve-fasttext-") as d:
        path = os.path.join(d, "model.bin")
        with open(path, "wb") as f:
            f.write(blob)
        return fasttext.load_model(path)


__all__ = ["FastTextTrainError", "fasttext_line", "model_from_bytes", "model_to_bytes", "train_classifier",
           "train_fasttext"]
