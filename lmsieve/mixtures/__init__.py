"""Data mixtures: spec + sampler, proxy runs, Bayesian mixture optimisation, baselines, reports.

See ``docs``-level overview in each module; papers: ADMIRE-BayesOpt (Chen et al., arXiv 2508.11551),
RegMix (Liu et al., arXiv 2407.01492), Meta-rater (Zhuang et al., arXiv 2504.14194).
"""
from lmsieve.mixtures.sampler import ShortfallError, sample_mixture
from lmsieve.mixtures.spec import MixtureSpec, load_spec

__all__ = ["MixtureSpec", "ShortfallError", "load_spec", "sample_mixture"]
