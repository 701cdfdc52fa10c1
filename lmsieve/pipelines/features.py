"""Per-document features computed per Arrow table, and the side files that hold them.

A *table feature* turns one table of valid documents into feature columns aligned with its rows.
Each feature has its own side file per input shard, ``<features dir>/<shard>.<feature>.parquet``:
``id`` plus its columns, one row per input row (invalid rows hold nulls), one row group per unit
(see :mod:`lmsieve.pipelines.fileio`), zstd, and a JSON footer entry (``lmsieve.beam``) with the
feature's fingerprint, the input shard it came from (path, rows, bytes), the unit layout and
per-unit statistics. A file is *complete* when it exists under its final name and its footer
matches the current fingerprint, input and layout; the features job skips complete files.

Built-in features:

* ``docs`` (always): ``valid`` (id and text present and valid UTF-8, id not repeated in its unit),
  ``n_chars`` (characters), ``domain`` (if the input has one). Selection reads this, never ``text``.
* ``dsir_ngrams``: DSIR's hashed n-gram counts (``ngram_buckets``, ``ngram_counts`` as
  ``list<int32>``, canonical: buckets ascending), from which the selection job fits the raw
  distribution and computes scores bit-identical to the in-process API's.
* any selector whose score depends on a fixed target only (``needs_pool_sample`` false: ZIP-FIT,
  random): ``score`` (float64) and ``eligible`` of ``selector.score_and_mask``, fitted once on the
  target in the driver. The target's content hash is part of the fingerprint.

Model features (embeddings, ...) go through RunInference instead: :mod:`lmsieve.pipelines.inference`.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.schemas.document import DOMAIN, ID, TEXT
from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, as_utf8_column, row_problems

VALID = "valid"
N_CHARS = "n_chars"
BUCKETS = "ngram_buckets"
COUNTS = "ngram_counts"
SCORE = "score"
ELIGIBLE = "eligible"
DOCS = "docs"
NGRAMS = "dsir_ngrams"
FEATURE_VERSION = 1


def fingerprint(kind: str, params: dict, content_hash: str = "") -> str:
    from lmsieve.features.store import make_fingerprint

    return make_fingerprint(f"beam:{kind}:v{FEATURE_VERSION}", content_hash, params)


def side_file(features_dir: str, shard: str, feature: str) -> str:
    from lmsieve.pipelines.fileio import join

    return join(features_dir, f"{shard}.{feature}.parquet")


# -- row validity ---------------------------------------------------------------------------------
def row_reasons(table: pa.Table, max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES) -> np.ndarray:
    """The first problem of each row of a unit (None where valid): the API's checks
    (:func:`lmsieve.schemas.quarantine.row_problems`), plus a missing id/text column."""
    missing = [c for c in (ID, TEXT) if c not in table.column_names]
    if missing:
        return np.full(table.num_rows, f"missing {missing[0]}", dtype=object)
    return row_problems(table, max_doc_bytes=max_doc_bytes)


def validate_rows(table: pa.Table, max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES) -> tuple[np.ndarray, dict[str, int]]:
    """(valid mask, counts per reason) for a unit of documents.

    Invalid: null or missing id/text, invalid UTF-8 in either, a text over ``max_doc_bytes``, an
    id repeated within the unit (the repeats; the first stays valid). Ids repeated *across* units
    or shards are not detected here.
    """
    why = row_reasons(table, max_doc_bytes)
    valid = why == None  # noqa: E711 - elementwise
    return valid, dict(sorted(Counter(why[~valid].tolist()).items()))


def scatter(values: pa.Array, valid: np.ndarray) -> pa.Array:
    """Values computed for the valid rows, spread back over all rows (nulls where invalid)."""
    if valid.all():
        return values
    pos = np.full(len(valid), -1, dtype=np.int64)
    pos[valid] = np.arange(int(valid.sum()))
    idx = pa.array(pos, mask=~valid)
    return values.take(idx)


# -- features -------------------------------------------------------------------------------------
class FeatureIdentity:
    """What names a stored feature: its parameters, content hash, fingerprint and schema.

    Shared by the table features here and the RunInference model handlers."""

    name: ClassVar[str] = ""

    def params(self) -> dict:
        return {}

    def content_hash(self) -> str:
        return ""

    def fingerprint(self) -> str:
        return fingerprint(self.name, self.params(), self.content_hash())

    def fields(self) -> list[pa.Field]:
        raise NotImplementedError

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(ID, pa.string())] + self.fields())


class TableFeature(FeatureIdentity):
    """A feature computed from a table of valid documents (see the module doc)."""

    #: Document columns it reads.
    input_columns: ClassVar[tuple[str, ...]] = (ID, TEXT)

    def setup(self) -> None:
        """Per-worker preparation (called once per DoFn instance)."""

    def compute(self, docs: pa.Table) -> dict[str, pa.Array]:
        raise NotImplementedError

    def unit_stats(self, cols: dict[str, pa.Array]) -> dict:
        return {}


class DocsFeature(TableFeature):
    """Validity, length and domain of every row (computed over all rows, see ``features_job``)."""

    name = DOCS
    input_columns = (ID, TEXT, DOMAIN)

    def fields(self) -> list[pa.Field]:
        return [pa.field(VALID, pa.bool_(), nullable=False), pa.field(N_CHARS, pa.int64()),
                pa.field(DOMAIN, pa.string())]

    def compute_all(self, table: pa.Table, valid: np.ndarray) -> dict[str, pa.Array]:
        n = table.num_rows
        chars = np.zeros(n, dtype=np.int64)
        if valid.any():
            sub = as_utf8_column(table.column(TEXT)).filter(pa.array(valid))
            chars[valid] = pc.utf8_length(sub).to_numpy(zero_copy_only=False)
        if DOMAIN in table.column_names and pa.types.is_string(table.schema.field(DOMAIN).type):
            dom = table.column(DOMAIN).combine_chunks()
        elif DOMAIN in table.column_names:
            dom = table.column(DOMAIN).combine_chunks().cast(pa.string())
        else:
            dom = pa.nulls(n, pa.string())
        return {VALID: pa.array(valid), N_CHARS: pa.array(chars, mask=~valid), DOMAIN: dom}

    def unit_stats(self, cols: dict[str, pa.Array]) -> dict:
        valid = np.asarray(cols[VALID])
        return {"rows": len(valid), "invalid": int((~valid).sum()), "chars": int(pc.sum(cols[N_CHARS]).as_py() or 0)}


class NgramFeature(TableFeature):
    """DSIR's hashed n-gram counts (``HashedNgramFeaturizer``), canonical sparse layout."""

    name = NGRAMS
    input_columns = (ID, TEXT)

    def __init__(self, num_buckets: int = 10000, ngrams: int = 2):
        from lmsieve.features.ngrams import HashedNgramFeaturizer

        self.featurizer = HashedNgramFeaturizer(num_buckets=num_buckets, ngrams=ngrams)

    def params(self) -> dict:
        return {"num_buckets": self.featurizer.num_buckets, "ngrams": self.featurizer.ngrams}

    def fields(self) -> list[pa.Field]:
        return [pa.field(BUCKETS, pa.list_(pa.int32())), pa.field(COUNTS, pa.list_(pa.int32()))]

    def compute(self, docs: pa.Table) -> dict[str, pa.Array]:
        occ = self.featurizer.transform(docs)
        b, c = occ.to_arrow()
        if isinstance(b, pa.LargeListArray):  # > 2^31 occurrences in one unit: keep list<int32>
            b, c = b.cast(pa.list_(pa.int32())), c.cast(pa.list_(pa.int32()))
        return {BUCKETS: b, COUNTS: c}

    def unit_stats(self, cols: dict[str, pa.Array]) -> dict:
        return {"n_features": int(pc.sum(pc.list_flatten(cols[COUNTS])).as_py() or 0)}


class ScoreFeature(TableFeature):
    """The score of a selector fitted on a fixed target (ZIP-FIT, random), stored per document."""

    input_columns = (ID, TEXT)

    def __init__(self, selector, target_hash: str):
        self.selector = selector
        self.name = selector.name
        self.target_hash = target_hash

    def params(self) -> dict:
        from lmsieve.selectors.base import jsonable

        return {"method": self.selector.name, "params": jsonable(self.selector.fingerprint_params())}

    def content_hash(self) -> str:
        return self.target_hash

    def fields(self) -> list[pa.Field]:
        return [pa.field(SCORE, pa.float64()), pa.field(ELIGIBLE, pa.bool_())]

    def compute(self, docs: pa.Table) -> dict[str, pa.Array]:
        cols = [c for c in docs.column_names if c in self.selector.input_columns or c == ID]
        s, e = self.selector.score_and_mask(docs.select(cols))
        return {SCORE: pa.array(np.asarray(s, dtype=np.float64)), ELIGIBLE: pa.array(np.asarray(e, dtype=bool))}


def selector_class(method: str):
    """The registered selector class for ``method`` (importing ``lmsieve.selectors.<method>`` if the
    package does not register it yet)."""
    from lmsieve.selectors.base import _REGISTRY, get_selector_class

    try:
        return get_selector_class(method)
    except ConfigError:
        import importlib

        try:
            importlib.import_module(f"lmsieve.selectors.{method}")
        except ImportError:
            raise ConfigError(f"unknown method {method!r}; available: {', '.join(sorted(_REGISTRY))}") from None
        return get_selector_class(method)


def hash_target_files(paths: list[str]) -> str:
    from lmsieve.pipelines.fileio import open_read

    h = hashlib.sha256()
    for p in paths:
        fh = hashlib.sha256()
        with open_read(p) as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                fh.update(block)
        h.update(fh.hexdigest().encode())
    return h.hexdigest()


def read_target(paths: list[str]) -> pa.Table:
    """The target documents (validated like the API's), from local or remote Parquet files."""
    from lmsieve.pipelines.fileio import read_table
    from lmsieve.schemas.document import validate_documents

    tables = [validate_documents(read_table(p, [ID, TEXT]), source=p) for p in paths]
    t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if t.num_rows == 0:
        raise ConfigError(f"inputs.target: the target set is empty (0 documents in {', '.join(paths)})")
    return t


__all__ = ["DocsFeature", "NgramFeature", "ScoreFeature", "TableFeature", "side_file", "validate_rows"]
