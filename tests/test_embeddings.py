"""Embeddings: equal to a direct sentence-transformers call on the packaged all-MiniLM-L6-v2,
unit norm, prefixes on the right side, float16 storage, offline model resolution."""
import os

import numpy as np
import pyarrow as pa
import pytest
from _proxy_fixture import one_thread  # noqa: F401
from conftest import pool_slice

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmsieve.features.embeddings import Embedder, column_to_numpy, packaged_model_path  # noqa: E402
from lmsieve.schemas.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def embedder(one_thread):  # noqa: F811
    return Embedder(device="cpu", batch_size=16, doc_prefix="", query_prefix="query: ")


@pytest.fixture(scope="module")
def direct():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)


def test_packaged_default_model_is_found_offline():
    path = packaged_model_path()
    assert (path / "model.safetensors").is_file() and (path / "modules.json").is_file()


def test_embeddings_equal_direct_sentence_transformers(embedder, direct):
    texts = pool_slice(16).column("text").to_pylist() + ["short", "", "a b c " * 300]
    got = embedder.encode(texts)
    want = direct.encode(texts, batch_size=7, normalize_embeddings=True, convert_to_numpy=True)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    # row order is the input's, whatever the length batching did
    np.testing.assert_allclose(embedder.encode(texts[:5][::-1]), got[:5][::-1], atol=2e-5)


def test_query_prefix_and_storage_dtype(embedder, direct):
    q = embedder.encode_queries(["how do I sort a list"])
    want = direct.encode(["query: how do I sort a list"], normalize_embeddings=True)
    np.testing.assert_allclose(q, want, atol=2e-5)
    doc = embedder.encode(["how do I sort a list"])
    assert not np.allclose(q, doc, atol=1e-3)
    cols = embedder(pa.table({"text": ["alpha", "beta"]}))
    col = cols["embed"]
    assert col.type == pa.list_(pa.float16(), 384)
    np.testing.assert_array_equal(column_to_numpy(col), embedder.encode(["alpha", "beta"]).astype(np.float16))


def test_fingerprint_depends_on_parameters(embedder):
    other = Embedder(device="cpu", doc_prefix="passage: ")
    assert other.fingerprint() != embedder.fingerprint()
    assert Embedder(device="cpu", query_prefix="query: ").fingerprint() == embedder.fingerprint()  # queries are not stored


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError):
        Embedder("no-such-org/no-such-model-xyz", device="cpu")
    with pytest.raises(ConfigError):
        Embedder(device="cpu", store_dtype="int8")
