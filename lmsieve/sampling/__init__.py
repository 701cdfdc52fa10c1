"""Sampling primitives: stable hashing and budgeted selection, used by every selector."""
from lmsieve.sampling.hashing import stable_gumbel, stable_hash64, stable_uniform
from lmsieve.sampling.select import Budget, rank, ranking_keys, select, take_budget

__all__ = ["Budget", "rank", "ranking_keys", "select", "stable_gumbel", "stable_hash64", "stable_uniform", "take_budget"]
