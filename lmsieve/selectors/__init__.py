"""Selectors: fitted objects that score documents against a target (see ``base.Selector``)."""
from lmsieve.selectors.base import Selector, available_methods, get_selector_class, register
from lmsieve.selectors import dsir as _dsir  # noqa: F401  (registers "dsir")
# TEMP(lead): zipfit import restored when the helper lands it

__all__ = ["Selector", "available_methods", "get_selector_class", "register"]
