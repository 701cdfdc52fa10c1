"""Method parameters checked at the boundary, against each selector's constructor signature.

Every way in (API keywords, CLI ``--param KEY=VALUE``, job specs) goes through
:func:`lmsieve.selection.inputs.make_selector`, which calls :func:`validate_params` first, so a typo or a wrong
type is one line naming the parameter and the valid ones, never a ``TypeError`` traceback:

* an unknown name: ``dsir has no parameter 'num_bucket' (did you mean 'num_buckets'?); valid: ...``;
* a wrong type, read from the annotation (``int``, ``float``, ``str``, ``bool``, ``dict``, ``list[...]``,
  unions with ``None``) or, unannotated, from the default's type: ``num_buckets='abc': expected int``;
* a value out of range, from the selector's optional ``param_ranges`` (``{name: (low, high)}``, either
  bound ``None``; inclusive) and the rule that counts and sizes (``num_*``, ``*_size``, ``n_*``, ...)
  named in :data:`POSITIVE` are positive;
* anything else the constructor itself refuses (a ``TypeError``/``ValueError``) is re-raised as a
  :class:`ConfigError` naming the method.
"""
from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from lmsieve.schemas.errors import ConfigError

#: Parameters that must be > 0 wherever a selector has them (sizes and counts).
POSITIVE = ("num_buckets", "ngrams", "chunk_len", "batch_tokens", "n_probe", "ref_windows", "probe_tokens",
            "encoder_epochs", "encoder_max_length", "hidden", "epochs", "epoch", "dim", "bucket", "sample_size",
            "per_query_k", "embed_batch_size", "finetune_epochs", "tau", "word_ngrams", "max_seq_length",
            "max_tokens", "window", "stride", "n_jobs")
#: Fractions that must lie in (0, 1].
FRACTIONS = ("positive_fraction", "token_fraction", "like_fraction", "proxy_share")


def signature_params(cls) -> dict[str, inspect.Parameter]:
    """The constructor's keyword parameters (``self`` and ``**kw`` left out); a method with window
    mode (:mod:`lmsieve.selectors.windows`) also takes ``unit`` and the window settings."""
    sig = inspect.signature(cls.__init__)
    out = {n: p for n, p in sig.parameters.items()
           if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if getattr(cls, "windowable", False):
        from lmsieve.selectors.windows import WINDOW_DEFAULTS

        kw = inspect.Parameter.KEYWORD_ONLY
        out["unit"] = inspect.Parameter("unit", kw, default="doc", annotation="str")
        for k, v in WINDOW_DEFAULTS.items():
            ann = "int | str" if k == "window" else None
            out[k] = inspect.Parameter(k, kw, default=v, **({"annotation": ann} if ann else {}))
    return out


def _type_names(p: inspect.Parameter) -> set[str] | None:
    """Accepted type names from an annotation (a string under postponed evaluation) or the default."""
    ann = p.annotation
    if ann is inspect.Parameter.empty:
        if p.default is None or p.default is inspect.Parameter.empty:
            return None
        d = p.default
        return {"bool"} if isinstance(d, bool) else {"float"} if isinstance(d, float) else \
            {"int"} if isinstance(d, int) else {"str"} if isinstance(d, str) else \
            {"list"} if isinstance(d, (list, tuple)) else {"dict"} if isinstance(d, dict) else None
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    names = set()
    for part in text.split("|"):
        base = re.sub(r"\[.*\]", "", part.strip()).strip()
        base = {"List": "list", "Dict": "dict", "Sequence": "list", "tuple": "list", "Tuple": "list",
                "Optional": "None"}.get(base, base)
        names.add(base)
    return names if names <= {"int", "float", "str", "bool", "dict", "list", "None"} else None


def _matches(value: Any, names: set[str]) -> bool:
    if value is None:
        return "None" in names
    if isinstance(value, bool):
        return "bool" in names
    if isinstance(value, int):
        return bool(names & {"int", "float"})
    if isinstance(value, float):
        return "float" in names
    if isinstance(value, str):
        return "str" in names
    if isinstance(value, (list, tuple)):
        return "list" in names
    if isinstance(value, dict):
        return "dict" in names
    return True  # objects passed through the API (a loaded model, say): the constructor decides


def _valid(method: str, params: dict[str, inspect.Parameter]) -> str:
    return ", ".join(f"{n}={p.default!r}" if p.default is not inspect.Parameter.empty else n
                     for n, p in params.items()) or "none"


def validate_params(cls, params: dict) -> None:
    """Raise :class:`ConfigError` (one line) for an unknown, mistyped or out-of-range parameter."""
    method = getattr(cls, "name", cls.__name__)
    sig = signature_params(cls)
    for key, value in params.items():
        if key not in sig:
            close = difflib.get_close_matches(key, list(sig), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{method} has no parameter {key!r}{hint}; valid: {_valid(method, sig)} "
                              f"(see `lmsieve methods {method}`)")
        names = _type_names(sig[key])
        if names is not None and not _matches(value, names):
            want = " or ".join(sorted(n for n in names if n != "None")) + (" or null" if "None" in names else "")
            raise ConfigError(f"{method} parameter {key}={value!r}: expected {want}")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = getattr(cls, "param_ranges", {}).get(key, (None, None))
        if key in POSITIVE and lo is None:
            if value <= 0:
                raise ConfigError(f"{method} parameter {key}={value!r}: must be > 0")
        if key in FRACTIONS and lo is None and not 0 < value <= 1:
            raise ConfigError(f"{method} parameter {key}={value!r}: must be in (0, 1]")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{method} parameter {key}={value!r}: must be in "
                              f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]")


def construct(cls, params: dict):
    """``cls(**params)`` after :func:`validate_params`; constructor errors become one-line ConfigErrors."""
    validate_params(cls, params)
    try:
        return cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        method = getattr(cls, "name", cls.__name__)
        raise ConfigError(f"{method}: invalid parameters ({exc}); valid: {_valid(method, signature_params(cls))}") \
            from None


__all__ = ["FRACTIONS", "POSITIVE", "construct", "signature_params", "validate_params"]
