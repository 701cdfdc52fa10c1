"""``lmsieve mix``: sample a mixture (default), optimise one with proxy runs, or recommend from a run table.

    lmsieve mix --spec mix.toml --out DIR                      # sample [mixture] into DIR
    lmsieve mix optimise --spec mix.toml --out DIR             # proxy runs + optimiser ([optimise])
    lmsieve mix optimise --runs runs.parquet --out DIR         # surrogate on a user-filled run table
"""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "mix", help="sample a data mixture, or optimise its weights with proxy runs",
        description="sample (default): draw the [mixture] of --spec (weights over a component column, a budget in "
                    "tokens, chars or docs) from its pool into --out (mixture-*.parquet + manifest.json). "
                    "optimise: train proxy LMs on mixtures chosen by the [optimise] settings (Bayesian "
                    "optimisation, random or RegMix), keep them in --out/runs.parquet (resumable), and write the "
                    "recommendation, recommended.toml, summary.json and plots. With --runs, fit the surrogate on "
                    "a run table you filled yourself (columns w_<component>, fidelity_cost, loss_<target>) "
                    "and recommend, without training anything. See docs/mixtures.md.",
    )
    p.add_argument("action", nargs="?", choices=["sample", "optimise", "optimize"], default="sample")
    p.add_argument("--spec", metavar="TOML", help="mixture spec ([mixture], and [optimise] for optimise)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--runs", metavar="PARQUET", help="optimise: recommend from this run table instead of training")
    p.add_argument("--objective", help="with --runs: the loss_<NAME> column to minimise (default: the only one)")
    p.add_argument("--surrogate", choices=["gp", "regmix"], default="gp", help="with --runs (default gp)")
    p.add_argument("--seed", type=int, help="override mixture.seed")
    from lmsieve.features.decontam.apply import add_cli_args

    add_cli_args(p)  # sample: contaminated documents leave the pool first (docs/decontamination.md)
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.schemas.errors import ConfigError

    if args.action == "sample":
        if not args.spec:
            raise ConfigError("--spec is required")
        from dataclasses import replace

        from lmsieve.mixtures.mixing import mix
        from lmsieve.mixtures.spec import load_spec

        spec = load_spec(args.spec)
        if args.seed is not None:
            spec = replace(spec, seed=args.seed)
        from lmsieve.features.decontam.apply import from_args

        _, man = mix(spec, args.out, decontaminate=from_args(args))
        c = man["counts"]
        print(json.dumps({"docs": c["selected"], "tokens": c["tokens"], "chars": c["chars"], "out": args.out,
                          "components": {k: v["docs"] for k, v in c["components"].items()}}))
        return 0
    from lmsieve.mixtures.session import recommend_runs, run_optimise

    if args.runs:
        s = recommend_runs(args.runs, args.out, spec_path=args.spec, objective=args.objective, method=args.surrogate)
    else:
        if not args.spec:
            raise ConfigError("optimise needs --spec (or --runs)")
        s = run_optimise(args.spec, args.out)
    print(json.dumps({"recommended": {k: round(v, 4) for k, v in s["recommended"].items()}, "runs": s["n_runs"],
                      "out": args.out, **({"loss": s["loss_at_target_fidelity"]} if "loss_at_target_fidelity" in s
                                          else {})}))
    return 0
