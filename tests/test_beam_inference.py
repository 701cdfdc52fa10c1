"""RunInference with lmsieve's ModelHandler base: the embedding step on CPU gives the vectors that
calling sentence-transformers directly gives, keyed back to the right documents."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.inference import DocModelHandler, RunDocInference, SentenceEmbeddingHandler, packaged_model_path
from lmsieve.pipelines.options import make_options

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def direct_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(packaged_model_path()), device="cpu")


def test_embedding_features_match_sentence_transformers(tmp_path, direct_model):
    pool = pool_slice(24)
    d = tmp_path / "pool"
    d.mkdir()
    pool = pool.set_column(pool.schema.get_field_index("text"), "text",
                           pa.array([t[: 100 + 29 * i] for i, t in enumerate(pool.column("text").to_pylist())]))
    pq.write_table(pool.slice(0, 14), d / "a.parquet", row_group_size=5)
    pq.write_table(pool.slice(14), d / "b.parquet", row_group_size=5)
    h = SentenceEmbeddingHandler(max_batch_size=8, device="auto")
    rep = run_features_job(str(d), str(tmp_path / "feat"), [], [h], options=make_options(["--runner=FnApiRunner"]),
                           progress_secs=0)
    assert rep.computed["embeddings"] == 2 and rep.counters["docs_inferred.embeddings"] == 24
    got = pa.concat_tables([pq.read_table(tmp_path / "feat" / f"{s}.embeddings.parquet") for s in ("a", "b")])
    assert got.column("id").to_pylist() == pool.column("id").to_pylist()
    assert got.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    emb = np.stack(got.column("embedding").to_numpy(zero_copy_only=False))
    ref = direct_model.encode(pool.column("text").to_pylist(), convert_to_numpy=True)
    np.testing.assert_allclose(emb, ref, rtol=0, atol=2e-6)


class _Lengths(DocModelHandler):
    """A toy model feature: the handler base with a trivial model (batch sizes recorded)."""

    name = "toy"

    def build(self, device):
        return _Len()

    def fields(self):
        return [pa.field("n", pa.int64())]


class _Len:
    def predict(self, texts):
        return {"n": np.array([len(t) for t in texts]), "batch": np.full(len(texts), len(texts))}


def test_handler_base_keys_batches_and_bytes():
    h = _Lengths(max_batch_size=4, max_batch_tokens=20, max_tokens=10)
    assert h.get_num_bytes([("a", "xyz"), ("b", "hello")]) == 8
    assert h.text_length(("k", "x" * 50)) == 10
    docs = [(f"id{i}", "x" * (i * 3)) for i in range(11)]
    with beam.Pipeline(options=make_options(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(docs) | RunDocInference(h)
        assert_that(out | beam.Map(lambda kv: (kv[0], int(kv[1]["n"]))), equal_to([(k, len(t)) for k, t in docs]))
        assert_that(out | "sizes" >> beam.Map(lambda kv: int(kv[1]["batch"]) <= 4), equal_to([True] * 11),
                    label="batches")


class _FakeExtractor:
    """Stands for an ``lmsieve.features`` extractor: ``extractor(batch) -> {column: pa.Array}``."""

    def columns(self):
        from lmsieve.features.store import FeatureColumn

        return [FeatureColumn("vec", pa.list_(pa.float32(), 2), (2,)), FeatureColumn("loss", pa.float64())]

    def fingerprint(self):
        return "fake-v1"

    def __call__(self, batch):
        n = np.array([len(t) for t in batch.to_pylist()], dtype=np.float32)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(np.stack([n, -n], 1).ravel()), 2)
        return {"vec": vec, "loss": pa.array(n.astype(np.float64) / 2)}


def test_extractor_adapter_writes_aligned_side_files(tmp_path):
    from lmsieve.pipelines.inference import ExtractorModelHandler

    pool = pool_slice(30)
    bad = pool.to_pydict()
    bad["text"][4] = None  # an invalid row: null features, still aligned
    d = tmp_path / "pool"
    d.mkdir()
    pq.write_table(pa.table(bad, schema=pool.schema), d / "p.parquet", row_group_size=7)
    h = ExtractorModelHandler(_FakeExtractor, "fake", max_batch_size=4)
    rep = run_features_job(str(d), str(tmp_path / "feat"), [], [h], options=make_options(["--runner=FnApiRunner"]),
                           progress_secs=0, on_invalid="quarantine")
    assert rep.computed == {"docs": 1, "fake": 1} and rep.invalid == 1
    t = pq.read_table(tmp_path / "feat" / "p.fake.parquet")
    assert t.column("id").to_pylist() == pool.column("id").to_pylist()
    n = [None if x is None else len(x) for x in bad["text"]]
    assert t.column("loss").to_pylist() == [None if v is None else v / 2 for v in n]
    # vectors are never null (pyarrow cannot read back null fixed-size lists): zeros, docs.valid says why
    assert t.column("vec").to_pylist() == [[0.0, 0.0] if v is None else [v, -v] for v in n]
    assert pq.read_table(tmp_path / "feat" / "p.docs.parquet").column("valid").to_pylist()[4] is False
