"""Integrations with other data-processing frameworks.

Each integration is the only place that imports its framework; selectors and features never do.

* ``lmsieve.integrations.datatrove`` -- lmsieve selectors as datatrove ``PipelineStep``s, and
  datatrove's readers, heuristic filters and MinHash dedup as pre-selection stages
  (``docs/datatrove.md``).
"""
