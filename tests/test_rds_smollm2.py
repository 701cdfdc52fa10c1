"""RDS+ on a real pretrained LM: SmolLM2-135M (runs whenever it is in the model cache: ``lmsieve
models fetch smollm2-135m``, which ``make test`` does; skipped otherwise).

Targeted at ``heldout_code_python`` over the first 400 shared-pool documents (about 15% Python),
the top 5% (20 documents) by RDS+ (last layer, position-weighted mean, max cosine over the target
queries) must be at least 80% Python. To stay affordable on CPU (SmolLM2 runs ~260 tokens/s fp32 on
2 cores), documents and queries are cut to their first ``MAX_TOKENS`` tokens (the paper: 2,048), and
``N_QUERIES`` target documents are the queries.
"""
import numpy as np
import pytest
from _proxy_fixture import one_thread  # noqa: F401
from _tiny_llama import smollm2_dir
from conftest import pool_slice, target_set

import lmsieve

MAX_TOKENS, N_QUERIES, N_POOL = 128, 60, 400


@pytest.mark.slow
def test_rds_smollm2_puts_python_on_top():
    model = smollm2_dir()
    pool = pool_slice(N_POOL)
    dom = np.array(pool.column("domain").to_pylist())
    target = target_set("heldout_code_python").slice(0, N_QUERIES)
    s = lmsieve.score(pool.select(["id", "text"]), "rds", target, model=str(model), max_tokens=MAX_TOKENS,
                      device="cpu", batch_tokens=4096)
    top = np.argsort(-s, kind="stable")[: N_POOL // 20]
    precision = float((dom[top] == "code_python").mean())
    assert (dom == "code_python").mean() < 0.2  # the task is not trivial: random picks ~15% Python
    assert precision >= 0.8, (precision, dict(zip(*np.unique(dom[top], return_counts=True))))
