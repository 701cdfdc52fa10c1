"""Selectors: fitted objects that score documents against a target (see ``base.Selector``)."""
from lmsieve.selectors.base import Selector, available_methods, get_selector_class, register
from lmsieve.selectors import dsir as _dsir  # noqa: F401  (registers "dsir")
from lmsieve.selectors import zipfit as _zipfit  # noqa: F401  (registers "zipfit")
from lmsieve.selectors import random as _random  # noqa: F401  (registers "random")
from lmsieve.selectors import meta_rater as _meta_rater  # noqa: F401
from lmsieve.selectors import color_filter as _color_filter  # noqa: F401  (registers "color")
from lmsieve.selectors import mates as _mates  # noqa: F401  (registers "mates")
from lmsieve.selectors import preselect as _preselect  # noqa: F401  (registers "preselect")
from lmsieve.selectors import betr as _betr  # noqa: F401  (registers "betr")
from lmsieve.selectors import rds as _rds  # noqa: F401  (registers "rds", "rds-rr")
from lmsieve.selectors import mona as _mona  # noqa: F401  (registers "mona")
from lmsieve.selectors import classifier as _classifier  # noqa: F401  (registers "classifier")
from lmsieve.selectors import knn as _knn  # noqa: F401  (registers "knn")
from lmsieve.selectors.windows import enable_windows as _enable_windows

for _cls in (_dsir.DSIR, _zipfit.ZipFit, _classifier.Classifier):  # unit="window" (lmsieve.selectors.windows)
    _enable_windows(_cls)

__all__ = ["Selector", "available_methods", "get_selector_class", "register"]
