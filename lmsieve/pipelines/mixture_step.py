"""The ``[mixture]`` step of a job spec: sample a data mixture from what the selection job kept.

::

    [mixture]                 # after [selection]; the keys of `lmsieve mix`'s [mixture] except pool
    out = "out/mix"           # mixture-00000-of-00001.parquet + manifest.json (last)
    weights = {code_python = 0.7, tech_docs = 0.3}
    budget = 2000000          # in `unit` (tokens = UTF-8 bytes, chars, docs)
    unit = "tokens"
    component_column = "domain"
    redistribute = true

Design (a decision; the mixture sampler's budgets are global): the step runs on the driver
after the Beam selection job has committed its manifest, and calls the same
:func:`lmsieve.mixtures.mixing.mix` as ``lmsieve mix`` over ``selection.out/selected-*.parquet``
(without a ``[selection]`` table: over ``inputs.pool``). The sample is therefore exactly the one
``lmsieve mix`` draws from those files with the same seed. The selected shards are a budgeted
subset of the pool, so reading them on one machine is what the selection's own output size
allows; a pool too large for that would need a distributed per-component top-k of the stable
hash keys (not built; see docs/mixtures.md).
"""
from __future__ import annotations

from lmsieve.mixtures.spec import MixtureSpec, spec_from_dict
from lmsieve.schemas.errors import ConfigError


def validate_mixture(table, selection: dict | None, pool: list, src: str) -> dict:
    """The validated ``[mixture]`` table: ``out`` plus the sampler's spec (its ``pool`` is the selection output)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: mixture: expected a table")
    t = dict(table)
    out = t.pop("out", None)
    if not isinstance(out, str) or not out:
        raise ConfigError(f"{src}: mixture.out: required (a directory for the sampled mixture)")
    if "pool" in t:
        raise ConfigError(f"{src}: mixture.pool: not allowed in a job (the step reads the selection output, "
                          "or inputs.pool without a [selection])")
    source = [f"{selection['out'].rstrip('/')}/selected-*.parquet"] if selection else list(pool)
    try:
        spec = spec_from_dict({**t, "pool": source}, where="mixture")
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}") from None
    return {"out": out, "spec": spec}


def run_mixture_step(mixture: dict) -> dict:
    """Sample the mixture into ``mixture['out']``; returns its manifest."""
    from lmsieve.mixtures.mixing import mix

    spec: MixtureSpec = mixture["spec"]
    _, manifest = mix(spec, mixture["out"])
    return manifest
