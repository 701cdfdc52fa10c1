"""Data mixtures: spec + sampler, proxy runs, Bayesian mixture optimisation, baselines, reports.

See ``docs``-level overview in each module; papers: ADMIRE-BayesOpt (Chen et al., arXiv 2508.11551),
RegMix (Liu et al., arXiv 2407.01492), Meta-rater (Zhuang et al., arXiv 2504.14194).
"""
from lmsieve.mixtures.sampler import ShortfallError, sample_mixture
from lmsieve.mixtures.spec import MixtureSpec, load_spec

_LAZY = {"mix": "lmsieve.mixtures.mixing", "run_optimise": "lmsieve.mixtures.session",
         "recommend_runs": "lmsieve.mixtures.session"}


def __getattr__(name: str):
    """``mix``, ``run_optimise``, ``recommend_runs`` on first use (they import torch/BoTorch late)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["MixtureSpec", "ShortfallError", "load_spec", "mix", "recommend_runs", "run_optimise", "sample_mixture"]
