"""RDS+ (rds, rds-rr): pooling, padding, hand-built selection orders, task balance (API == Beam:
test_repr_beam.py)."""
import numpy as np
import pyarrow as pa
import pytest
import torch
from _proxy_fixture import one_thread, tiny_proxy_dir  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.api import fit_and_score, run_selection
from lmsieve.features.proxy_lm.pooling import pool_hidden
from lmsieve.sampling.select import Budget
from lmsieve.selectors.base import Selector
from lmsieve.selectors.rds import RDS, global_max_order, order_to_scores, round_robin_order, task_round_robin

# q1 dominates the top of the list; q0's best document is also q1's best (the collision)
SIMS = np.array([[0.90, 0.10, 0.20, 0.30, 0.35],
                 [0.95, 0.80, 0.70, 0.60, 0.00]])
RR_EXPECTED = [0, 4, 1, 3, 2]      # q0:0, q1 pops 0 (taken: turn lost), q0:4, q1:1, q0:3, q1:2
GLOBAL_EXPECTED = [0, 1, 2, 3, 4]  # by max over queries: .95 .8 .7 .6 .35


@pytest.fixture(scope="module")
def proxy(one_thread):  # noqa: F811
    return str(tiny_proxy_dir())


def test_pooling_equals_closed_form_weighted_sum():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)  # right and left padding
    got = pool_hidden(h, mask, "weighted", normalize=False).numpy()
    hn = h.numpy().astype(np.float64)
    exp0 = (1 * hn[0, 0] + 2 * hn[0, 1] + 3 * hn[0, 2]) / 6
    exp1 = (1 * hn[1, 1] + 2 * hn[1, 2] + 3 * hn[1, 3] + 4 * hn[1, 4]) / 10
    np.testing.assert_allclose(got, np.stack([exp0, exp1]), rtol=1e-5, atol=1e-6)
    unit = pool_hidden(h, mask, "weighted").numpy()
    np.testing.assert_allclose(unit[1], exp1 / np.linalg.norm(exp1), rtol=1e-5, atol=1e-6)


def test_batch_of_one_equals_padded_batch(proxy):
    sel = RDS(model=proxy, max_tokens=96)
    texts = ["short one", "a much longer document " * 6, "mid length text here"]
    batch = sel.embed(texts)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(sel.embed([t])[0], batch[i], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)


def test_round_robin_and_global_orders_on_a_collision():
    cands = [np.argsort(-row, kind="stable") for row in SIMS]
    assert round_robin_order(cands).tolist() == RR_EXPECTED
    assert global_max_order(SIMS).tolist() == GLOBAL_EXPECTED
    assert round_robin_order(cands, limit=3).tolist() == RR_EXPECTED[:3]
    # top-k by the 1-D score reproduces the round-robin order, unreached documents after it
    s = order_to_scores(np.array([4, 1]), fallback=np.array([0.9, 0.1, 0.2, 0.3, 0.35]))
    assert np.argsort(-s, kind="stable").tolist() == [4, 1, 0, 3, 2]


def test_two_tasks_of_different_scale_split_the_picks():
    rng = np.random.default_rng(0)
    scores = np.stack([rng.random(200), 10 * rng.random(200)], axis=1)
    scores[:30, 1] = 10 + scores[:30, 0]  # overlap: both tasks like the same documents
    scores[:30, 0] += 1
    order, who = task_round_robin(scores)
    assert sorted(order.tolist()) == list(range(200))  # duplicates counted once
    for n in (7, 40, 101):
        counts = np.bincount(who[:n], minlength=2)
        assert abs(counts[0] - n // 2) <= 1 and abs(counts[1] - n // 2) <= 1
    # a plain max over the mixed scales would give nearly everything to task 1
    assert np.bincount(np.argmax(scores[np.argsort(-scores.max(1))[:40]], axis=1), minlength=2)[0] < 5


def _docs(n=48):
    t = pool_slice(400).slice(0, n)
    return t.set_column(t.schema.get_field_index("text"), "text",
                        pa.array([s[:200] for s in t.column("text").to_pylist()]))


def test_api_round_robin_equals_brute_force_and_save_load(proxy, tmp_path):
    pool, target = _docs(), target_set("humaneval").slice(0, 3)
    sel, s, e = fit_and_score("rds-rr", target, pool, model=proxy, max_tokens=96, per_query_k=8)
    sims = sel.queries_ @ sel.embed(pool).T
    cands = [np.lexsort((np.arange(sims.shape[1]), -row))[:8] for row in sims]
    expected = round_robin_order(cands)
    got = run_selection(sel, pool, Budget(k=len(expected)), seed=3, scores=s, eligible=e).indices
    assert got.tolist() == expected.tolist()
    g = fit_and_score("rds", target, pool, model=proxy, max_tokens=96)[1]
    np.testing.assert_allclose(g, sims.max(axis=0), rtol=1e-5, atol=1e-6)
    # the humaneval queries are chat-templated (prompt + answer), so differ from the raw text
    raw = sel.embed(pa.table({"text": target.column("text")}))
    assert not np.allclose(raw, sel.queries_, atol=1e-3)
    back = Selector.load(sel.save(tmp_path / "rr"))
    assert back.name == "rds-rr" and np.array_equal(back.queries_, sel.queries_)


def test_multi_task_through_the_api_splits_picks_despite_x10_scale(monkeypatch):
    """lmsieve.select(target={task: ...}, method="rds-rr"): per-task max, then round-robin across
    tasks; task b's similarities are 10x task a's, yet each task gets floor(N/2) +- 1 picks."""
    from lmsieve.api import select as api_select

    rng = np.random.default_rng(5)
    dim = 8
    vec = {}

    def doc(topic, i):
        v = np.eye(dim)[topic] + 0.3 * rng.normal(size=dim)
        t = f"topic{topic} doc{i}"
        vec[t] = v / np.linalg.norm(v)
        return t

    pool = pa.table({"id": [f"d{i}" for i in range(120)], "text": [doc(i % 2, i) for i in range(120)]})
    ta = pa.table({"id": ["a0", "a1"], "text": [doc(0, 1000), doc(0, 1001)]})
    tb = pa.table({"id": ["b0", "b1"], "text": [doc(1, 2000), doc(1, 2001)]})
    scale = {t: 10.0 for t in tb.column("text").to_pylist()}  # task b's queries: 10x the scale

    def fake_embed(self, batch):
        from lmsieve.selectors.chat_template import template_texts

        return np.stack([vec[t] * scale.get(t, 1.0) for t in template_texts(batch)]).astype(np.float32)

    monkeypatch.setattr(RDS, "embed", fake_embed)
    for n in (9, 30):
        got = api_select(pool, "rds-rr", {"task_a": ta, "task_b": tb}, keep=n, seed=0, model="unused")
        topics = [int(t[5]) for t in got.column("text").to_pylist()]
        assert len(topics) == n and len(set(got.column("id").to_pylist())) == n
        assert abs(topics.count(0) - n // 2) <= 1 and abs(topics.count(1) - n // 2) <= 1
    # a global max over the mixed scales gives (nearly) everything to task b
    single = api_select(pool, "rds", pa.concat_tables([ta, tb]), keep=30, seed=0, model="unused")
    assert sum(int(t[5]) == 1 for t in single.column("text").to_pylist()) >= 28
