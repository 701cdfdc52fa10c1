"""Selectors whose fitted state includes files (proxy checkpoints, fastText models).

Shared by CoLoR-Filter, MATES, PreSelect and BETR: ``save(dir)`` writes the selector JSON and
arrays (:meth:`Selector.save`) plus the subclass's files (``_save_files``); ``load(dir)`` reads
them back (``_load_files``). The ``fitted=DIR`` constructor parameter makes ``fit`` a load of DIR
(no pool sample needed), so a selector fitted once in-process can be scored per document in a
Beam job; its fingerprint is then the hash of DIR's files.
"""
from __future__ import annotations

import json
from pathlib import Path

from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import STATE_JSON, Selector


class FittedDirMixin:
    """Selectors whose fitted state includes files (checkpoints, fastText): ``save``/``load`` and
    the ``fitted=DIR`` parameter (``fit`` then loads DIR; fingerprints hash DIR's files)."""

    #: Attributes holding fastText models: pickled (for Beam workers) as the bytes of their .bin file.
    fasttext_attributes: tuple[str, ...] = ()

    def __getstate__(self):
        st = self.__dict__.copy()
        if self.fasttext_attributes:
            from lmsieve.features.fasttext_model import model_to_bytes

            st.update({a: model_to_bytes(st[a]) for a in self.fasttext_attributes if a in st})
        return st

    def __setstate__(self, st):
        self.__dict__.update(st)
        if self.fasttext_attributes:
            from lmsieve.features.fasttext_model import model_from_bytes

            self.__dict__.update({a: model_from_bytes(st[a]) for a in self.fasttext_attributes
                                  if isinstance(st.get(a), bytes)})

    def _init_fitted(self, fitted):
        # An instance attribute: with a fitted directory no pool sample is needed (API, Beam job).
        self.needs_pool_sample = fitted is None and type(self).needs_pool_sample
        if fitted is not None:  # the saved parameters rule (execution parameters excepted)
            path = Path(fitted) / STATE_JSON
            if not path.is_file():
                raise ConfigError(f"fitted={str(fitted)!r}: no {STATE_JSON} (save a fitted {self.name} there first)")
            doc = json.loads(path.read_text())
            if doc["method"] != self.name:
                raise ConfigError(f"fitted={fitted!r} holds a {doc['method']!r} selector, not {self.name!r}")
            given = self._params
            self._params = {**doc["params"], **{k: given[k] for k in self.execution_params}, "fitted": str(fitted)}

    def fingerprint_params(self):
        """With ``fitted``, the hash of the fitted files stands for every parameter."""
        from lmsieve.features.store import hash_files

        if self._params.get("fitted"):
            return {"fitted": hash_files(self._params["fitted"], skip=("optimizer",))}
        return super().fingerprint_params()

    def _load_fitted(self) -> bool:
        d = self._params.get("fitted")
        if d is None:
            return False
        other = type(self).load(d)
        keep = self._params
        self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "_params"})
        self._params = keep
        self.needs_pool_sample = False
        return True

    def save(self, path):
        path = Selector.save(self, path)
        self._save_files(Path(path))
        return path

    @classmethod
    def load(cls, path):
        obj = Selector.load.__func__(cls, path)
        obj._load_files(Path(path))
        return obj


__all__ = ["FittedDirMixin"]
