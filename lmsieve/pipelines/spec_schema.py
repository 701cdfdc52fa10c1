"""The job spec's declarative schema (pydantic): every table, key, type, range and default, with a
description; ``lmsieve run --schema`` prints it as JSON Schema.

:func:`parse_tables` validates a raw TOML dict against :class:`JobSpecModel` and turns the first
problem into the one-line ``ConfigError`` lmsieve always gives: ``FILE: KEY: what is wrong``
(``selection.keep_fraction: must be <= 1, got 1.5``). Rules between tables (the features the
method needs, Dataflow's flags, building each selector and handler) stay in
:mod:`lmsieve.pipelines.jobspec`, after this structural pass.
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES

BUDGET_KEYS = ("keep", "keep_fraction", "keep_chars_fraction", "threshold")
Paths = Union[str, list[str]]


class SpecKeyError(Exception):
    """Raised inside validators (not a ValueError, so pydantic lets it through): names its key."""

    def __init__(self, key: str, msg: str):
        super().__init__(msg)
        self.key, self.msg = key, msg


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JobTable(_Table):
    name: str | None = Field(None, description="job name (default: the spec file's name)")
    description: str | None = Field(None, description="free text")


class InputsTable(_Table):
    pool: Paths = Field(description="documents to select from: path, directory, glob, gs:// URL, sample:NAME, "
                                    "or a list of those")
    target: Paths | None = Field(None, description="target documents (DSIR, ZIP-FIT, ...)")
    on_invalid: Literal["error", "quarantine"] = Field("error", description="bad documents: stop naming file "
                                                                             "and row, or quarantine and count")
    max_doc_bytes: int = Field(DEFAULT_MAX_DOC_BYTES, ge=1, description="texts longer than this are invalid")

    @field_validator("pool", "target")
    @classmethod
    def _non_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("expected a path or a non-empty list of paths")
        return v


class _Budget(_Table):
    keep: int | None = Field(None, ge=0, description="keep this many documents")
    keep_fraction: float | None = Field(None, gt=0, le=1, description="keep this fraction of the documents")
    keep_chars_fraction: float | None = Field(None, gt=0, le=1, description="keep this fraction of the characters")
    threshold: float | None = Field(None, description="keep documents scoring at least this")

    @model_validator(mode="after")
    def _one_budget(self):
        given = [k for k in BUDGET_KEYS if getattr(self, k) is not None]
        if len(given) != 1 and not getattr(self, "quotas", None):
            raise SpecKeyError("|".join(BUDGET_KEYS), f"give exactly one budget (got {', '.join(given) or 'none'})")
        return self


class QuotaTable(_Budget):
    pass


class SelectionTable(_Budget):
    method: str = Field(description="selector name (dsir, zipfit, random, color_filter, ...)")
    out: str = Field(description="output directory: selected-*.parquet, scores-*.parquet, manifest.json")
    seed: int = Field(0, description="seed of the stable (seed, id) hash (ties, Gumbel noise)")
    ranking: Literal["topk", "gumbel"] | None = Field(None, description="default: the method's own")
    temperature: float = Field(1.0, gt=0, description="Gumbel ranking temperature")
    exact: bool = Field(True, description="exact budget (band pass) or the approximate quantile cutoff")
    num_quantiles: int = Field(1001, ge=3, description="quantile sketch size (band ~ N / num_quantiles)")
    epsilon: float = Field(1e-3, gt=0, lt=1, description="quantile sketch error")
    write_scores: bool = Field(True, description="also write scores-*.parquet")
    params: dict[str, Any] = Field(default_factory=dict, description="the selector's parameters")
    quotas: dict[str, QuotaTable] | None = Field(None, description="per-domain budgets instead of one budget")

    @model_validator(mode="after")
    def _quotas_or_budget(self):
        if self.quotas is not None:
            if any(getattr(self, k) is not None for k in BUDGET_KEYS):
                raise SpecKeyError("quotas", "give either a global budget or per-domain quotas, not both")
            if not self.quotas:
                raise SpecKeyError("quotas", "empty table")
        return self


class NgramsTable(_Table):
    num_buckets: int = Field(10000, ge=1, description="hashed n-gram buckets")
    ngrams: int = Field(2, ge=1, description="n-gram order")


class _HandlerKeys(_Table):
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda")
    max_batch_size: int = Field(64, ge=1, description="documents per forward pass at most")
    max_batch_tokens: int | None = Field(None, ge=1, description="padded tokens per batch at most (docs x longest)")
    max_tokens: int | None = Field(None, ge=1, description="tokens per document counted at most")
    chars_per_token: float = Field(4.0, gt=0, description="token estimate used to sort and budget batches")
    large_model: bool = Field(False, description="one model per VM shared by its SDK processes")
    model_copies: int | None = Field(None, ge=1, description="model copies per VM (with large_model)")
    accelerator: str | None = Field(None, description="resource hint for the inference step (right fitting)")
    min_ram: str | None = Field(None, description="resource hint, e.g. 16GB")


class EmbeddingsTable(_HandlerKeys):
    model: str | None = Field(None, description="all-MiniLM-L6-v2 (packaged), package:NAME, a fetched model "
                                                "name, gs://..., or an absolute in-image path")
    dtype: Literal["float32", "float16"] = Field("float32", description="stored vector type")
    normalize: bool = Field(False, description="unit vectors")
    max_seq_length: int | None = Field(None, ge=1, description="truncation (default: the model's)")
    dim: int | None = Field(None, ge=1, description="embedding size when the launcher cannot see the model")


class LMFeatureTable(_HandlerKeys):
    proxy: str | None = Field(None, description="proxy LM: a fetched name (smollm2-135m), gs://..., in-image path")
    sae: str | None = Field(None, description="sparse autoencoder directory (feature sae)")
    embed_model: str | None = Field(None, description="embedding model (feature embed)")
    options: dict[str, Any] = Field(default_factory=dict, description="the extractor's options (window, stride, ...)")


class FeaturesTable(BaseModel):
    """``out``, ``compute``, and one table per feature (``[features.<name>]``)."""

    model_config = ConfigDict(extra="allow", strict=True)
    out: str = Field(description="directory of the feature side files")
    compute: list[str] | None = Field(None, description="features to compute (default: what the method needs)")
    dsir_ngrams: NgramsTable | None = None
    embeddings: EmbeddingsTable | None = None

    @model_validator(mode="after")
    def _tables(self):
        for k, v in (self.model_extra or {}).items():
            if not isinstance(v, dict):
                raise SpecKeyError(k, "unknown key (known: out, compute, and one table per feature)")
            if k in LM_FEATURES:
                try:
                    LMFeatureTable.model_validate(v)
                except ValidationError as exc:
                    raise SpecKeyError(*_first_error(exc, k)) from None
        return self


LM_FEATURES = ("proxy_loss", "proxy_chunks", "pooled", "sae")
BeamValue = Union[bool, int, float, str, list[Union[bool, int, float, str]]]


class JobSpecModel(_Table):
    """A job spec: [job], [inputs], [features], [selection], [beam], [mixture], [decontaminate]."""

    job: JobTable = Field(default_factory=JobTable)
    inputs: InputsTable = Field(description="the documents")
    features: FeaturesTable | None = Field(None, description="the features job")
    selection: SelectionTable | None = Field(None, description="the selection job")
    beam: dict[str, BeamValue] = Field(default_factory=dict, description="Beam pipeline flags (runner, project, "
                                                                          "region, temp_location, ...)")
    mixture: dict[str, Any] | None = Field(None, description="`lmsieve mix`'s [mixture] keys except pool, plus out")
    decontaminate: dict[str, Any] | None = Field(
        None, description="index (a saved index or evaluation files), mode ('remove' | 'report'), min_overlap, "
                          "...: a flag column in the features job, applied by the selection job")


_TYPES = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false", "string_type": "a string",
          "dict_type": "a table", "list_type": "a list", "model_type": "a table", "int_parsing": "an integer",
          "float_parsing": "a number", "literal_error": None}


def _first_error(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    errs = exc.errors(include_url=False)
    # a union (path or list of paths, beam values) reports every branch: one message for them
    e = errs[0]
    loc = [str(x) for x in e["loc"] if not str(x).startswith(("list[", "str", "bool", "int", "float", "function-"))]
    key = ""
    for x in loc:
        key += f"[{x}]" if x.isdigit() else (f".{x}" if key else x)
    key = f"{prefix}.{key}" if prefix and key else (prefix or key)
    t, got = e["type"], e.get("input")
    if key.startswith("beam.") and t != "extra_forbidden":
        return key, f"expected a string, number, boolean or list of those, got {got!r}"
    if t == "extra_forbidden":
        return key, "unknown key"
    if t == "missing":
        return key, "required"
    if t == "literal_error":
        expected = str(e["ctx"]["expected"]).replace("'", "").replace(" or ", ", ")
        return key, f"must be one of {expected}, got {got!r}"
    if t in _TYPES:
        return key, f"expected {_TYPES[t]}, got {got!r}"
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[t]
        bound = next(iter(e["ctx"].values()))
        return key, f"must be {op} {bound}, got {got!r}"
    return key, e["msg"].removeprefix("Value error, ")


def parse_tables(raw: dict, source: str) -> JobSpecModel:
    """``raw`` (a TOML dict) -> the validated model, or a ConfigError ``SOURCE: KEY: message``."""
    if "inputs" not in raw or not isinstance(raw.get("inputs"), dict) or "pool" not in raw["inputs"]:
        if "inputs" in raw and not isinstance(raw["inputs"], dict):
            raise ConfigError(f"{source}: inputs: expected a table, got {raw['inputs']!r}")
        raise ConfigError(f"{source}: inputs.pool: required (the documents to select from)")
    try:
        return JobSpecModel.model_validate(raw)
    except SpecKeyError as exc:
        raise ConfigError(f"{source}: {_where(raw, exc.key)}: {exc.msg}") from None
    except ValidationError as exc:
        key, msg = _first_error(exc)
        if msg == "unknown key":
            msg = f"unknown key (known: {', '.join(_known(key))})"
        raise ConfigError(f"{source}: {key}: {msg}") from None


def _where(raw: dict, key: str) -> str:
    """The table a validator's key belongs to (validators only know their own table)."""
    if key == "|".join(BUDGET_KEYS):
        q = (raw.get("selection") or {}).get("quotas")
        if isinstance(q, dict):
            for d, t in q.items():
                if not isinstance(t, dict) or sum(k in t for k in BUDGET_KEYS) != 1:
                    return f"selection.quotas.{d}.{key}"
        return f"selection.{key}"
    if key == "quotas":
        return "selection.quotas"
    return f"features.{key}"


def _known(key: str) -> list[str]:
    parts = [p for p in key.replace("[", ".").split(".") if p and not p.rstrip("]").isdigit()][:-1]
    model: type[BaseModel] = JobSpecModel
    for p in parts:
        f = model.model_fields.get(p)
        ann = getattr(f, "annotation", None)
        sub = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if p in LM_FEATURES:
            sub = [LMFeatureTable]
        if not sub:
            if model is SelectionTable and p == "quotas":
                sub = [QuotaTable]
            else:
                break
        model = sub[0]
    return sorted(model.model_fields)


def json_schema() -> dict:
    return JobSpecModel.model_json_schema()


__all__ = ["BUDGET_KEYS", "JobSpecModel", "LM_FEATURES", "json_schema", "parse_tables"]
