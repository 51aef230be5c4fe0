"""What a grid search over small widths meets: the from-scratch default at each size, beside LSA at its size.

On a stratified sample of a dataset's training texts, ``TextAutoencoder`` is fitted at every
(``latent_dim``, width) pair of the grid, ``embedding_dim`` and ``hidden_dim`` both set to the width and
everything else left at its default (the texts read whole), once per seed; the width ``default`` leaves
``embedding_dim`` and ``hidden_dim`` at theirs too (what a grid over ``latent_dim`` alone meets). LSA
(``TfidfVectorizer(sublinear_tf=True)`` + ``TruncatedSVD``, the small-widths baseline) is fitted at each
latent size with the same seeds as ``TruncatedSVD``'s ``random_state`` (its randomised solver draws a
random start, which moved a small LSA's probe by up to 2.4 points on these samples) and once with the exact
solver (``algorithm="arpack"``). ``lsa min_df=2`` is the LSA of ``bench_default_lsa.py``'s eight cases
(``TfidfVectorizer(sublinear_tf=True, min_df=2)``: a word that one training text alone holds is left
out), with the same seeds. Each is scored by the linear probe and KMeans NMI of
``bench_objectives.probe_and_cluster`` on the test split (whole, or a stratified sample of ``--n-test``
texts); the summary sets each size's seed mean beside LSA's seed mean and its exact score, and beside the
seed mean of LSA with ``min_df=2``.
``--variants`` adds fits of ``bench_small_widths.VARIANTS`` (``default`` changes nothing) at every size.

    python benchmarks/bench_width_grid.py [--data ../shared/data] [--dataset ag_news] [--n-train 1200]
        [--n-test N] [--latents 8,16,32] [--widths 16,32,64|default] [--seeds 0,1,2] [--variants default]
        [--output width_grid_cpu_ag_news]
"""

import argparse
import itertools
import time
import warnings

import _data
import _results
import numpy as np
import torch
from bench_quality import svd
from bench_small_widths import VARIANTS, fit_variant, scores, spread
from sklearn.feature_extraction.text import TfidfVectorizer

from sktextae import TruncationWarning

COLUMNS = ["method", "latent_dim", "width", "seed", "epochs", "spread", "probe", "nmi", "fit_seconds"]
SUMMARY = ["variant", "latent_dim", "width", "probe (seed mean)", "lsa probe (seed mean)", "lsa probe (exact)",
           "probe - lsa (seed mean)", "lsa min_df=2 probe (seed mean)", "probe - lsa min_df=2 (seed mean)",
           "nmi (seed mean)", "lsa nmi (seed mean)"]
# The width that leaves embedding_dim and hidden_dim at the estimator's defaults.
DEFAULT_WIDTH = "default"


def summarise(rows, variant, latent_dim, width):
    """One summary row: a variant's seed means at one size beside LSA's at its latent size."""
    lsa = [r for r in rows if r["method"] == "lsa" and r["latent_dim"] == latent_dim]
    lsa_seeds = [r for r in lsa if r["seed"] != "exact"]
    lsa_probe = float(np.mean([r["probe"] for r in lsa_seeds]))
    min_df = float(np.mean([r["probe"] for r in rows
                            if r["method"] == "lsa min_df=2" and r["latent_dim"] == latent_dim]))
    ours = [r for r in rows if r["method"] == f"sktextae {variant}" and r["latent_dim"] == latent_dim
            and r["width"] == width]
    probe = float(np.mean([r["probe"] for r in ours]))
    return {"variant": variant, "latent_dim": latent_dim, "width": width, "probe (seed mean)": round(probe, 4),
            "lsa probe (seed mean)": round(lsa_probe, 4),
            "lsa probe (exact)": next(r["probe"] for r in lsa if r["seed"] == "exact"),
            "probe - lsa (seed mean)": round(probe - lsa_probe, 4), "lsa min_df=2 probe (seed mean)": round(min_df, 4),
            "probe - lsa min_df=2 (seed mean)": round(probe - min_df, 4),
            "nmi (seed mean)": round(float(np.mean([r["nmi"] for r in ours])), 3),
            "lsa nmi (seed mean)": round(float(np.mean([r["nmi"] for r in lsa_seeds])), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=None,
                        help="a stratified sample of the test split (default: the whole split)")
    parser.add_argument("--latents", default="8,16,32")
    parser.add_argument("--widths", default="16,32,64")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default="default")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    output = args.output or f"width_grid_cpu_{args.dataset}"
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    train, y_train = _data.load_split(args.data, args.dataset, "train", max_texts=args.n_train)
    test, y_test = _data.load_split(args.data, args.dataset, "test", max_texts=args.n_test)
    latents = [int(n) for n in args.latents.split(",")]
    widths = [w if w == DEFAULT_WIDTH else int(w) for w in args.widths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    base = {"benchmark": "width_grid", "dataset": args.dataset, "n_train": len(train), "n_test": len(test),
            "device": _results.device_name("cpu")}
    rows = []

    def add(row):
        rows.append(_results.stamp({**base, **row}))
        print({k: row.get(k) for k in COLUMNS if k in row}, flush=True)
        _results.write(output, rows, COLUMNS, quiet=True,
                       title=f"Small widths on {args.dataset}: {len(train)} training texts, {len(test)} test texts")

    for method, min_df, lsa_seeds in [("lsa", 1, [*seeds, "exact"]), ("lsa min_df=2", 2, seeds)]:
        tfidf = TfidfVectorizer(sublinear_tf=True, min_df=min_df).fit(train)
        X_train, X_test = tfidf.transform(train), tfidf.transform(test)
        for latent_dim, seed in itertools.product(latents, lsa_seeds):
            fitted = svd(latent_dim, seed).fit(X_train)
            add({"method": method, "latent_dim": latent_dim, "seed": seed,
                 **scores(fitted.transform(X_train), y_train, fitted.transform(X_test), y_test)})
    variants = args.variants.split(",")
    for variant, latent_dim, width, seed in itertools.product(variants, latents, widths, seeds):
        start = time.perf_counter()
        sizes = {} if width == DEFAULT_WIDTH else {"embedding_dim": width, "hidden_dim": width}
        model, Z_train = fit_variant(latent_dim, {**VARIANTS[variant], **sizes, "random_state": seed}, train)
        add({"method": f"sktextae {variant}", "latent_dim": latent_dim, "width": width, "seed": seed,
             "epochs": len(model.net_.history), "spread": round(spread(Z_train)[2], 3),
             **scores(Z_train, y_train, model.transform(test), y_test),
             "fit_seconds": round(time.perf_counter() - start, 1)})
    summary = [summarise(rows, variant, latent_dim, width)
               for variant, latent_dim, width in itertools.product(variants, latents, widths)]
    _results.write(f"{output}_summary", [_results.stamp({**base, **row}) for row in summary], SUMMARY, quiet=True,
                   title=f"Small widths on {args.dataset}, seed means: each variant beside LSA at its latent size")
    print((_results.RESULTS / f"{output}_summary.md").read_text())


if __name__ == "__main__":
    main()
