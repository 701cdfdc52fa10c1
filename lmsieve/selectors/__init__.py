"""Selectors: fitted objects that score documents against a target (see ``base.Selector``)."""
from lmsieve.selectors.base import Selector, available_methods, get_selector_class, register
from lmsieve.selectors import dsir as _dsir  # noqa: F401  (registers "dsir")
from lmsieve.selectors import zipfit as _zipfit  # noqa: F401  (registers "zipfit")
from lmsieve.selectors import random as _random  # noqa: F401  (registers "random")

__all__ = ["Selector", "available_methods", "get_selector_class", "register"]
