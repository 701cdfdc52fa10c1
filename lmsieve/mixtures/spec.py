"""A mixture: weights over named components and a budget (tokens, characters or documents).

Loaded from TOML (``[mixture]`` table) or built in Python; every validation error names the key.
Tokens are counted with lmsieve's byte tokenizer (UTF-8 bytes) unless ``length_column`` names a
column of per-document lengths, so budgets compare across mixtures without a trained tokenizer.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field

from lmsieve.schemas.errors import ConfigError

UNITS = ("tokens", "chars", "docs")
RANKINGS = ("top", "gumbel", "random")


@dataclass(frozen=True)
class MixtureSpec:
    """``weights`` (name -> share, normalised to sum 1) and ``budget`` in ``unit``.

    ``ranking``: order inside a component — ``top`` (best score first), ``gumbel`` (sample without
    replacement with probability ∝ exp(score / temperature)), ``random`` (stable hash; the default
    when there is no score column). ``redistribute``: give a short component's deficit to the others
    in proportion to their weights instead of raising :class:`~lmsieve.mixtures.ShortfallError`.
    """
    weights: dict
    budget: float
    unit: str = "tokens"
    ranking: str = "random"
    temperature: float = 1.0
    seed: int = 0
    redistribute: bool = False
    component_column: str = "domain"
    score_column: str | None = None
    length_column: str | None = None
    pool: tuple = field(default=())

    def __post_init__(self):
        w = self.weights
        if not isinstance(w, dict) or not w:
            raise ConfigError("mixture.weights must be a non-empty table of component = weight")
        for k, v in w.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"mixture.weights.{k} must be a finite number >= 0, got {v!r}")
        total = float(sum(w.values()))
        if total <= 0:
            raise ConfigError("mixture.weights must not all be 0")
        object.__setattr__(self, "weights", {str(k): float(v) / total for k, v in w.items()})
        if not isinstance(self.budget, (int, float)) or not self.budget > 0:
            raise ConfigError(f"mixture.budget must be > 0, got {self.budget!r}")
        if self.unit not in UNITS:
            raise ConfigError(f"mixture.unit: expected one of {UNITS}, got {self.unit!r}")
        if self.ranking not in RANKINGS:
            raise ConfigError(f"mixture.ranking: expected one of {RANKINGS}, got {self.ranking!r}")
        if self.ranking != "random" and not self.score_column:
            raise ConfigError(f"mixture.ranking = {self.ranking!r} needs mixture.score_column")
        if not self.temperature > 0:
            raise ConfigError("mixture.temperature must be > 0")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError("mixture.seed must be an integer")
        object.__setattr__(self, "pool", tuple([self.pool] if isinstance(self.pool, str) else self.pool))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


_KEYS = set(MixtureSpec.__dataclass_fields__)


def spec_from_dict(d: dict, where: str = "mixture") -> MixtureSpec:
    """Build a spec from a ``[mixture]`` table; unknown keys are errors (typos must not pass)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    for req in ("weights", "budget"):
        if req not in d:
            raise ConfigError(f"{where}.{req} is required")
    return MixtureSpec(**d)


def load_spec(path) -> MixtureSpec:
    """Read ``[mixture]`` from a TOML file (relative pool paths resolve against the file).
    Other tables (``[optimise]``) are left to their readers."""
    from pathlib import Path

    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: mixture spec not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    if "mixture" not in doc:
        raise ConfigError(f"{p}: missing [mixture] table")
    d = dict(doc["mixture"])
    pool = d.get("pool", ())
    pool = [pool] if isinstance(pool, str) else list(pool)
    d["pool"] = tuple(str(q if _absolute(q) else (p.parent / q)) for q in pool)
    return spec_from_dict(d)


def _absolute(q: str) -> bool:
    """Absolute paths, URLs (``gs://``) and bundled ``sample:NAME`` files are not re-rooted."""
    from pathlib import Path

    return Path(q).is_absolute() or "://" in q or q.startswith("sample:")
