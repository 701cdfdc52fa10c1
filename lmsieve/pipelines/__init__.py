"""Apache Beam pipelines: the features job and the selection job (see ``docs/beam.md``).

Modules, one concept each (selectors never import Beam; only these modules do):

* ``options``       -- ``LmsieveOptions`` and Beam options with FnApiRunner as the local default;
* ``fileio``        -- Parquet on Beam filesystems: shard names, units (coalesced row groups),
  atomic writers;
* ``features``      -- per-table features and their keyed side files (``docs``, ``dsir_ngrams``,
  stored selector scores);
* ``features_job``  -- the features job: plan from footers, skip complete side files, compute, write;
* ``inference``     -- ``RunInference``: the ``DocModelHandler`` base (per-unit, token-budgeted batches),
  the sentence-embedding handler and the registry (LM feature) handler;
* ``model_refs``    -- portable model references, resolved on the worker;
* ``model_units``   -- model features per unit: read, infer, write, assemble shards; resume per unit;
* ``global_stats``  -- numpy ``CombineGlobally`` accumulators and DSIR's raw/target fit;
* ``global_select`` -- per-group cutoffs: weighted approximate quantiles, exact band pass;
* ``selection_job`` -- the selection job: score from side files, cut, join back, manifest last;
* ``metrics``       -- counters and the local progress line;
* ``jobspec``       -- TOML job specs: load, validate (errors name the key), run;
* ``spec_schema``   -- the job spec's pydantic schema (``lmsieve run --schema``);
* ``mixture_step``  -- the ``[mixture]`` step in Beam (equal to ``lmsieve mix``);
* ``dataflow``      -- render a Dataflow job request offline (``--dataflow-job-file``).

``python -m lmsieve.pipelines --lmsieve_job JOB.toml [beam flags]`` runs a spec (e.g. from a
Flex Template launcher); ``lmsieve run JOB.toml`` is the same from the CLI.
"""
