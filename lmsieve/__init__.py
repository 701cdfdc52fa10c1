"""lmsieve: data selection and curation for LLM training sets.

In-process API::

    import lmsieve
    scores = lmsieve.score(pool, method="dsir", target=target)
    picked = lmsieve.select(pool, method="zipfit", target=target, keep=0.05, seed=0)
"""
__version__ = "0.1.0"

from lmsieve.warnings_filter import silence_library_noise as _silence  # noqa: E402

_silence()


def score(docs, method, target, **params):
    from lmsieve.api import score as _score

    return _score(docs, method=method, target=target, **params)


def select(docs, method, target, keep, seed=0, **params):
    from lmsieve.api import select as _select

    return _select(docs, method=method, target=target, keep=keep, seed=seed, **params)


__all__ = ["__version__", "score", "select"]
