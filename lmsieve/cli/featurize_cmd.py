"""``lmsieve featurize``: model features of every pool document, as keyed Parquet side files."""
from __future__ import annotations


def add_parser(sub) -> None:
    from lmsieve.features.registry import FEATURES

    p = sub.add_parser(
        "featurize", help="compute model features (embeddings, proxy-LM losses, pooled states, SAE codes)",
        description="Write DIR/<feature>.parquet (id + feature columns) for every pool document. A feature file "
                    "whose fingerprint (model files, parameters, feature version) matches is reused: only "
                    "documents missing from it are computed. Features: " + ", ".join(FEATURES) + ".",
    )
    p.add_argument("--features", required=True, metavar="F1,F2",
                   help="comma-separated: " + ", ".join(FEATURES))
    p.add_argument("--pool", required=True, nargs="+", metavar="P",
                   help="documents: Parquet file(s), directory or glob with id/text columns")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    from lmsieve.cli.common import add_column_args

    add_column_args(p, target=False)
    p.add_argument("--proxy", metavar="DIR", help="proxy LM: an lmsieve checkpoint or a local HF causal LM directory")
    p.add_argument("--embed-model", metavar="M",
                   help="sentence-transformers model directory or cached hub id (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--sae", metavar="DIR", help="sparsify-format SAE directory (default: PROXY/sae when present)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="feature option, repeatable (e.g. --param chunk_len=512 --param store_dtype=float32)")
    p.add_argument("--no-reuse", action="store_true", help="recompute even when a matching feature file exists")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.cli.common import one_or_many, parse_params
    from lmsieve.features.registry import build_extractors
    from lmsieve.features.store import compute_features
    from lmsieve.io.inputs import load_docs

    from lmsieve.cli.common import check_out, column_kw

    check_out(args.out, "dir")
    names = [n.strip() for n in args.features.split(",") if n.strip()]
    extractors = build_extractors(names, proxy=args.proxy, embed_model=args.embed_model, sae=args.sae,
                                  device=args.device, options=parse_params(args.param))
    pool, _ = load_docs(one_or_many(args.pool), name="pool", columns=["id", "text"], **column_kw(args))
    for ext in extractors:
        _, info = compute_features(ext, pool, args.out, reuse=not args.no_reuse, progress=not args.no_progress)
        print(f"{ext.name}: computed {info['computed']}, reused {info['reused']} -> {info['path']}")
    return 0
