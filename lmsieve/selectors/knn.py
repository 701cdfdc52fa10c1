"""``knn``: sentence-embedding nearest neighbours of the target examples, per window.

Every window of a document (:mod:`lmsieve.features.windows`: line-aligned, overlapping) is
embedded with a sentence encoder (default all-MiniLM-L6-v2, packaged:
:mod:`lmsieve.features.embeddings`); a document's score is its **best cosine to any target
example** over its windows (``window_reduce="max"``; ``mean_topk`` as in window mode). This is
the retrieval step of RDS+ (Ivison et al. 2025, arXiv:2503.01807) and of BETR's labelling
(Mizrahi et al. 2025, arXiv:2507.12466) used directly as the selection score, on windows so that
one matching function in a long file is found. ``round_robin=True`` orders documents as RDS+'s
``get_top_influences``: examples take turns popping their best remaining document (each
example's top ``per_query_k`` documents, kept with ``knn.merge_topk`` per batch, never the
example x pool matrix); the Beam jobs run it through the ``rds-rr`` round-robin path.

Choices where the issue is silent:

* ``window`` defaults to 512 bytes, not ``"auto"``: a fixed window makes the stored window
  embeddings the same for every target, so a second target on the same pool reuses them; 512
  bytes (~130 word pieces) fit the encoder's 256-token limit, so nothing is truncated.
  ``window="auto"`` (median target length) is available; ``unit="doc"`` embeds whole documents
  (truncated by the encoder, as BETR/RDS+).
* window embeddings are rounded to float16 (the feature store's dtype) whether or not a store
  is used, so stored and fresh scores are identical; the per-window max over examples is a
  float64 product over blocks of windows (bit-stable whatever the batching, so the API and the
  Beam jobs select the same ids), then rounded to float32.
* ``store=DIR`` (execution parameter): window embeddings are kept in ``DIR/knn_windows.parquet``
  keyed by document id and a fingerprint of (model files, window settings, prefix)
  (:mod:`lmsieve.features.store`); only documents not there yet are embedded. For in-process runs
  (one writer); Beam workers score without it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from lmsieve.features.knn import merge_topk
from lmsieve.features.store import Extractor, FeatureColumn, compute_features
from lmsieve.features.windows import Windows, auto_window, cut_windows, reduce_windows
from lmsieve.schemas.document import ID, TEXT, text_array
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.rds import order_to_scores, round_robin_order
from lmsieve.selectors.windows import WINDOW_DEFAULTS, check_unit, check_window_settings, target_texts

WINDOW_BLOCK = 8192
STORE_NAME = "knn_windows"


class WindowEmbedder(Extractor):
    """Per document: the float16 embeddings of its windows (``list<fixed_size_list<float16>>``)."""

    kind = "window_embed"
    doc_batch = 256

    def __init__(self, embedder, window: int, overlap: float, name: str = STORE_NAME):
        self.embedder, self.window, self.overlap, self.name = embedder, int(window), float(overlap), name

    def embed(self, batch) -> tuple[Windows, np.ndarray]:
        w = cut_windows(batch, self.window, self.overlap)
        emb = self.embedder.encode(w.texts).astype(np.float16)
        return w, emb

    def __call__(self, batch) -> dict[str, pa.Array]:
        w, emb = self.embed(batch)
        inner = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])
        offsets = np.concatenate([w.first, [len(w.doc)]]).astype(np.int32)
        return {self.name: pa.ListArray.from_arrays(pa.array(offsets), inner)}

    def columns(self) -> list[FeatureColumn]:
        return [FeatureColumn(self.name, pa.list_(pa.list_(pa.float16(), self.embedder.dim)), (None, self.embedder.dim))]

    def params(self) -> dict:
        return {**self.embedder.params(), "window": self.window, "overlap": self.overlap}

    def model_hash(self) -> str:
        return self.embedder.model_hash()


@register
class KNN(Selector):
    """Score = best cosine between any window of the document and any target example."""

    name = "knn"
    fitted_attributes = ("queries_", "window_")
    execution_params = ("device", "batch_size", "store")
    cli_note = ("sentence-embedding nearest neighbours per window (window=512 bytes, window_overlap=0.5, "
                "window_reduce=max|mean_topk, unit=doc|window, round_robin=true for RDS+ order; store=DIR "
                "keeps window embeddings for other targets; device=cpu|cuda|auto)")

    def __init__(self, embed_model: str | None = None, max_seq_length: int | None = None, query_prefix: str = "",
                 doc_prefix: str = "", unit: str = "window", window: int | str = 512,
                 window_overlap: float = WINDOW_DEFAULTS["window_overlap"], window_reduce: str = "max",
                 window_top_k: int = 3, window_min_fraction: float = 0.0, round_robin: bool = False,
                 per_query_k: int = 1024, device: str = "cpu", batch_size: int = 64, store: str | None = None):
        check_unit(unit)
        check_window_settings(window, window_overlap, window_reduce, window_top_k, window_min_fraction)
        if int(per_query_k) < 1:
            raise ConfigError(f"per_query_k must be >= 1, got {per_query_k!r}")
        super().__init__(embed_model=embed_model, max_seq_length=max_seq_length, query_prefix=query_prefix,
                         doc_prefix=doc_prefix, unit=unit, window=window, window_overlap=float(window_overlap),
                         window_reduce=window_reduce, window_top_k=int(window_top_k),
                         window_min_fraction=float(window_min_fraction), round_robin=bool(round_robin),
                         per_query_k=int(per_query_k), device=device, batch_size=int(batch_size), store=store)
        self.round_robin = bool(round_robin)  # the Beam jobs' rds-rr path (pipelines.round_robin)

    def embedder(self):
        if getattr(self, "_embedder", None) is None:
            from lmsieve.features.embeddings import Embedder

            p = self._params
            self._embedder = Embedder(p["embed_model"], device=p["device"], batch_size=p["batch_size"],
                                      max_seq_length=p["max_seq_length"], doc_prefix=p["doc_prefix"],
                                      query_prefix=p["query_prefix"])
        return self._embedder

    def __getstate__(self):
        st = self.__dict__.copy()
        st.pop("_embedder", None)  # reloaded from the model files on the worker
        return st

    def fingerprint_params(self) -> dict:
        return {**super().fingerprint_params(), "model_hash": self.embedder().model_hash()}

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, target, pool_sample=None) -> "KNN":
        texts = target_texts(target)
        if not texts:
            raise InputError("knn needs at least one target example", "target")
        p = self._params
        if p["unit"] == "doc":
            self.window_ = 0
        else:
            self.window_ = auto_window(texts) if p["window"] == "auto" else int(p["window"])
        self.queries_ = self.embedder().encode(texts, side="query").astype(np.float32)
        return self

    # -- window embeddings ----------------------------------------------------------------------
    def _cut(self, texts: pa.Array) -> Windows:
        if self.window_ == 0:  # unit="doc": one window per document
            n = len(texts)
            lens = np.asarray(pa.compute.binary_length(texts.cast(pa.binary())).to_numpy(zero_copy_only=False))
            return Windows(texts, np.arange(n), np.zeros(n, np.int64), lens.astype(np.int64), np.arange(n), n)
        return cut_windows(texts, self.window_, self._params["window_overlap"])

    def window_embeddings(self, batch) -> tuple[Windows, np.ndarray]:
        """(windows, float32 (n_windows, dim) float16-rounded unit embeddings) of a batch."""
        texts = text_array(batch)
        w = self._cut(texts)
        store = self._params["store"]
        if store and self.window_ and isinstance(batch, (pa.Table, pa.RecordBatch)) and ID in batch.column_names:
            ext = WindowEmbedder(self.embedder(), self.window_, self._params["window_overlap"])
            docs = pa.table({ID: batch.column(ID), TEXT: texts})
            table, _ = compute_features(ext, docs, store)
            col = table.column(STORE_NAME).combine_chunks()
            flat = col.flatten().flatten().to_numpy(zero_copy_only=False)
            emb = np.asarray(flat, dtype=np.float32).reshape(-1, self.embedder().dim)
            if len(emb) != len(w.doc):
                raise ConfigError(f"store={store!r}: stored windows do not match this cutting (delete the file)")
            return w, emb
        emb = self.embedder().encode(w.texts).astype(np.float16).astype(np.float32)
        return w, emb

    def window_sims(self, emb: np.ndarray) -> np.ndarray:
        """(n_windows, n_examples) float64 cosines, one block of windows at a time."""
        q = self.queries_.astype(np.float64)
        out = np.empty((len(emb), len(q)))
        for s in range(0, len(emb), WINDOW_BLOCK):
            out[s:s + WINDOW_BLOCK] = emb[s:s + WINDOW_BLOCK].astype(np.float64) @ q.T
        return out

    # -- scoring --------------------------------------------------------------------------------
    def _doc_scores(self, batch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(document score, eligible, per-document per-example best cosine (n, Q) or None)."""
        w, emb = self.window_embeddings(batch)
        best = np.empty(len(emb), dtype=np.float64)
        per_doc = None
        p = self._params
        usable = w.lengths >= p["window_min_fraction"] * self.window_ if self.window_ else None
        sims_all = None
        for s in range(0, len(emb), WINDOW_BLOCK):
            sims = self.window_sims(emb[s:s + WINDOW_BLOCK])
            best[s:s + len(sims)] = sims.max(axis=1) if sims.shape[1] else -1.0
            if self.round_robin:
                sims_all = sims if sims_all is None else np.concatenate([sims_all, sims])
        best = best.astype(np.float32).astype(np.float64)
        score, eligible = reduce_windows(best, w, p["window_reduce"], p["window_top_k"], usable)
        if self.round_robin and len(w.doc):
            per_doc = np.maximum.reduceat(sims_all.astype(np.float32), w.first, axis=0)  # (n_docs, Q)
        return score, eligible, per_doc

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        if self.round_robin:
            s, e = self.fit_score_table(batch)
            return s, e
        s, e, _ = self._doc_scores(batch)
        return s, e

    def query_topk(self, batch) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """(score per document, (cosines, rows) of each example's top ``per_query_k`` documents in
        the batch, rows -1 where missing): one unit's share of the round-robin (Beam)."""
        self.check_fitted()
        s, _, per_doc = self._doc_scores(batch)
        k = min(self._params["per_query_k"], len(s))
        if per_doc is None or k == 0:
            q = len(self.queries_)
            return s, (np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64))
        sims = per_doc.T  # (Q, n)
        idx = np.lexsort((np.broadcast_to(np.arange(sims.shape[1]), sims.shape), -sims), axis=1)[:, :k]
        return s, (np.take_along_axis(sims, idx, 1).astype(np.float32), idx.astype(np.int64))

    def fit_score_table(self, table, batch_rows: int = 4096):
        """Scores over ``table`` scored at once (the round-robin order is global over it)."""
        n = table.num_rows if hasattr(table, "num_rows") else len(table)
        parts, best = [], None
        k = self._params["per_query_k"]
        for start in range(0, n, batch_rows):
            block = table.slice(start, batch_rows) if hasattr(table, "slice") else table[start:start + batch_rows]
            s, (sims, idx) = self.query_topk(block)
            parts.append(s)
            idx = np.where(idx >= 0, idx + start, -1)
            best = (sims, idx) if best is None else merge_topk(best[0], best[1], sims, idx, k)
        s = np.concatenate(parts) if parts else np.zeros(0)
        if best is None:
            return s, np.ones(len(s), dtype=bool)
        order = round_robin_order([row[row >= 0] for row in best[1]])
        return order_to_scores(order, s), np.ones(len(s), dtype=bool)

    def fit_score(self, target, table, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Fit and score the whole ``table`` (the round-robin is global over it)."""
        self.fit(target)
        cols = [c for c in table.column_names if c in (ID, TEXT)]
        if self.round_robin:
            return self.fit_score_table(table.select(cols))
        parts = [self._doc_scores(table.slice(s, 4096).select(cols))[:2] for s in range(0, table.num_rows, 4096)]
        if progress:
            progress(table.num_rows)
        if not parts:
            return np.zeros(0), np.zeros(0, dtype=bool)
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"window_": int(self.window_)}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"queries_": np.asarray(self.queries_, dtype=np.float32)}

    def _set_state(self, state: dict, arrays: dict) -> None:
        self.window_ = int(state["window_"])
        self.queries_ = arrays["queries_"].astype(np.float32)
