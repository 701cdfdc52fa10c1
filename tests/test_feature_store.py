"""Feature store: declared columns, fingerprints, keyed side Parquet reused only when the
fingerprint matches; the proxy extractors through it; and the featurize / train-proxy CLI."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _proxy_fixture import domain_docs, one_thread, tiny_proxy_dir  # noqa: F401
from conftest import pool_slice

from lmsieve.cli.main import main
from lmsieve.features.store import (Extractor, FeatureColumn, compute_features, feature_path, hash_files,
                                    read_fingerprint)


class CharCount(Extractor):
    """A cheap extractor that counts how many documents it was asked to compute."""

    kind = "char_count"
    doc_batch = 7

    def __init__(self, scale=1, model_file=None, name="chars"):
        self.scale, self.model_file, self.name, self.calls = scale, model_file, name, 0

    def columns(self):
        return [FeatureColumn(f"{self.name}_n", pa.int64()), FeatureColumn(f"{self.name}_v", pa.list_(pa.float32(), 2), (2,))]

    def params(self):
        return {"scale": self.scale}

    def model_hash(self):
        return hash_files(self.model_file) if self.model_file else "none"

    def __call__(self, batch):
        from lmsieve.schemas.document import text_array

        texts = text_array(batch).to_pylist()
        self.calls += len(texts)
        n = [len(t) * self.scale for t in texts]
        flat = pa.array(np.array([[x, -x] for x in n], np.float32).ravel())
        return {f"{self.name}_n": pa.array(n, pa.int64()), f"{self.name}_v": pa.FixedSizeListArray.from_arrays(flat, 2)}


def docs(n, start=0):
    ids = [f"d{i:03d}" for i in range(start, start + n)]
    return pa.table({"id": ids, "text": ["x" * (i % 17) for i in range(start, start + n)]})


def test_writes_keyed_columns_with_fingerprint(tmp_path):
    ext = CharCount()
    table, info = compute_features(ext, docs(30), tmp_path)
    assert info["computed"] == 30 and info["reused"] == 0 and ext.calls == 30
    on_disk = pq.read_table(feature_path(tmp_path, "chars"))
    assert on_disk.column_names == ["id", "chars_n", "chars_v"]
    assert on_disk.schema.field("chars_v").type == pa.list_(pa.float32(), 2)
    assert read_fingerprint(feature_path(tmp_path, "chars")) == ext.fingerprint()
    meta = on_disk.schema.metadata
    assert json.loads(meta[b"lmsieve.columns"])[1] == {"name": "chars_v", "type": "fixed_size_list<item: float>[2]",
                                                       "shape": [2]}
    assert table.column("chars_n").to_pylist() == [i % 17 for i in range(30)]


def test_reuses_matching_rows_and_computes_only_missing_ones(tmp_path):
    compute_features(CharCount(), docs(30), tmp_path)
    again = CharCount()
    shuffled = docs(40).take(np.random.default_rng(1).permutation(40))  # 10 new ids, any order
    table, info = compute_features(again, shuffled, tmp_path)
    assert again.calls == 10 and info["computed"] == 10 and info["reused"] == 30
    assert table.column("id").to_pylist() == shuffled.column("id").to_pylist()
    want = [len(t) for t in shuffled.column("text").to_pylist()]
    assert table.column("chars_n").to_pylist() == want
    third = CharCount()
    compute_features(third, docs(40), tmp_path)
    assert third.calls == 0
    assert pq.read_table(feature_path(tmp_path, "chars")).num_rows == 40


def test_recomputes_when_the_fingerprint_changes(tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"v1")
    compute_features(CharCount(model_file=model), docs(20), tmp_path / "f")
    changed = CharCount(scale=2, model_file=model)
    table, info = compute_features(changed, docs(20), tmp_path / "f")
    assert changed.calls == 20 and info["reused"] == 0
    assert table.column("chars_n").to_pylist() == [2 * (i % 17) for i in range(20)]
    fp_v1 = changed.fingerprint()
    model.write_bytes(b"v2")  # same parameters, new model content (same size, same second)
    newer = CharCount(scale=2, model_file=model)
    assert newer.fingerprint() != fp_v1
    compute_features(newer, docs(20), tmp_path / "f")
    assert newer.calls == 20
    forced = CharCount(scale=2, model_file=model)
    compute_features(forced, docs(20), tmp_path / "f", reuse=False)
    assert forced.calls == 20


def test_proxy_extractors_through_the_store(tmp_path, one_thread):  # noqa: F811
    from lmsieve.features.proxy_lm import ProxyChunkLoss, ProxyLoss, document_losses, load_proxy

    lm = load_proxy(tiny_proxy_dir(), device="cpu")
    table = pool_slice(12, ("id", "text"))
    table = table.set_column(1, "text", pa.array([t[:600] for t in table.column("text").to_pylist()]))
    got, _ = compute_features(ProxyLoss(lm), table, tmp_path)
    ref = document_losses(lm, table)
    np.testing.assert_allclose(got.column("proxy_nll").to_numpy(), ref.total_nll, rtol=1e-6)
    assert got.column("proxy_tokens").to_pylist() == [len(t.encode()) for t in table.column("text").to_pylist()]
    chunks, _ = compute_features(ProxyChunkLoss(lm, chunk_len=256), table, tmp_path)
    assert [len(c) for c in chunks.column("proxy_chunks_ce").to_pylist()] == \
        [-(-len(t.encode()) // 256) for t in table.column("text").to_pylist()]
    assert ProxyLoss(lm, stride=32).fingerprint() != ProxyLoss(lm).fingerprint()


def test_cli_train_proxy_then_featurize(tmp_path, capsys, one_thread):  # noqa: F811
    data = tmp_path / "data.parquet"
    t = domain_docs("legal").slice(0, 40)
    pq.write_table(t.set_column(t.column_names.index("text"), "text",
                                pa.array([x[:800] for x in t.column("text").to_pylist()])), data)
    ck = tmp_path / "proxy"
    rc = main(["train-proxy", "--data", str(data), "--out", str(ck), "--steps", "20", "--layers", "1", "--width", "32",
               "--heads", "2", "--context", "64", "--tokenizer", "byte", "--batch-size", "4", "--save-optimizer",
               "--sae-latents", "64", "--sae-k", "4", "--sae-steps", "20", "--no-progress"])
    assert rc == 0
    assert {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors", "sae"} <= \
        {p.name for p in ck.iterdir()}
    feats = "proxy_loss,proxy_chunks,pooled,sae"
    args = ["featurize", "--features", feats, "--pool", str(data), "--out", str(tmp_path / "f"), "--proxy", str(ck),
            "--param", "chunk_len=128", "--no-progress"]
    assert main(args) == 0
    for name in ("proxy", "proxy_chunks", "pooled", "sae"):
        assert pq.read_table(tmp_path / "f" / f"{name}.parquet").num_rows == 40
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("computed 0, reused 40") == 4
    assert main(["featurize", "--features", "proxy_loss", "--pool", str(data), "--out", str(tmp_path / "g")]) == 2
    assert main(["featurize", "--features", "nope", "--pool", str(data), "--out", str(tmp_path / "g")]) == 2
    assert main(args + ["--param", "not_an_option=1"]) == 2
