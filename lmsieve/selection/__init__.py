"""The selection and scoring runs: what ``lmsieve.select``/``lmsieve.score`` and the CLI's ``select``/``score`` do.

* :mod:`.inputs`: the selector by name, the pool under the bad-document policy, the target;
* :mod:`.scoring`: fitting and batched scoring; :mod:`.sample`: cutting scores to a budget;
* :mod:`.steps`: the resumable fit → score → sample steps (``OUT/.lmsieve-runs``);
* :mod:`.run` / :mod:`.outputs`: one selection run end to end, its files and manifest;
* :mod:`.score_run`: one scoring run, optionally to a Parquet file.
"""
