"""The from-scratch default beside LSA at the same size, with candidate fixes, on the four datasets.

For each dataset, in one process on one CPU thread:

- ``lsa``: ``TfidfVectorizer(sublinear_tf=True, min_df=2)`` + ``TruncatedSVD`` (``bench_quality.lsa``,
  ``random_state=0``); with ``--lsa-seeds``, also LSA with each seed as ``TruncatedSVD``'s ``random_state``
  (its randomised solver's start moves the probe by up to 2.4 points here) and with the exact solver
  (``algorithm="arpack"``), so that the models' seed means stand beside LSA's;
- ``lsa on the model's tokens``: the same TF-IDF weighting and SVD over the tokens the default model
  reads (its BPE tokenizer trained on the training texts, each text cut to ``max_length``);
- ``sktextae <variant>`` for each ``--variants``: ``TextAutoencoder(latent_dim)`` with what the variant
  of ``bench_small_widths.VARIANTS`` changes (``default`` changes nothing; ``lsa-start`` starts the
  encoder's token embeddings from LSA), one fit per seed (``--variants ""``: none, LSA alone).

Each row: the linear probe's test accuracy (StandardScaler + LogisticRegression on the train split),
KMeans NMI (mean of 5 KMeans seeds), and for the autoencoders the epochs run, the best validation
epoch, the spread of the training vectors (see ``bench_small_widths``) and the fit's seconds.
Texts: TREC whole, SST-2's fixed 10,000-phrase training sample, 20 Newsgroups 3,000/1,000 posts
(``_data.load_sample``), AG News a stratified sample of ``--ag-news-train`` training texts (the whole
120,000 would take an hour per fit here) and its whole test split.

    python benchmarks/bench_default_lsa.py [--data ../shared/data] [--datasets trec,ag_news,sst2,20newsgroups]
        [--latent-dim 64] [--variants default,lsa-start] [--seeds 0] [--ag-news-train 5000]
        [--lsa-seeds] [--output default_lsa_cpu]
"""

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the tokenizers' thread pool: read once, at its first use

import argparse  # noqa: E402 (after the thread setting)
import time  # noqa: E402
import warnings  # noqa: E402

import _data  # noqa: E402
import _results  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_objectives import probe_and_cluster  # noqa: E402
from bench_quality import lsa, svd  # noqa: E402
from bench_small_widths import VARIANTS, fit_variant, lsa_on_tokens, spread  # noqa: E402

from sktextae import TruncationWarning  # noqa: E402

COLUMNS = ["dataset", "method", "seed", "n_train", "accuracy", "nmi", "nmi_std", "epochs", "best_epoch", "spread",
           "fit_seconds"]


def load(data, dataset, split, ag_news_train):
    if dataset == "ag_news" and split == "train":
        return _data.load_split(data, dataset, split, max_texts=ag_news_train)
    return _data.load_sample(data, dataset, split)


def scores(Z_train, y_train, Z_test, y_test):
    result = probe_and_cluster(Z_train, y_train, Z_test, y_test, random_state=0)
    return {name: round(float(value), 3) for name, value in result.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,ag_news,sst2,20newsgroups")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--variants", default="default,lsa-start")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--ag-news-train", type=int, default=5000)
    parser.add_argument("--lsa-seeds", action="store_true", help="LSA with each seed and the exact solver too")
    parser.add_argument("--output", default="default_lsa_cpu")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}: use {sorted(VARIANTS)}.")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    rows = []

    def add(row):
        rows.append(_results.stamp({"benchmark": "default_lsa", "latent_dim": args.latent_dim,
                                    "device": _results.device_name("cpu"), **row}))
        print({k: row.get(k) for k in COLUMNS if k in row}, flush=True)
        _results.write(args.output, rows, COLUMNS, quiet=True,
                       title=f"The from-scratch default beside LSA at {args.latent_dim} dimensions")

    for dataset in args.datasets.split(","):
        train, y_train = load(args.data, dataset, "train", args.ag_news_train)
        test, y_test = load(args.data, dataset, "test", args.ag_news_train)
        base = {"dataset": dataset, "n_train": len(train), "n_test": len(test)}
        words = lsa(args.latent_dim)
        add({**base, "method": f"lsa-{args.latent_dim}",
             **scores(words.fit_transform(train), y_train, words.transform(test), y_test)})
        if args.lsa_seeds:
            X_train, X_test = words[0].transform(train), words[0].transform(test)
            for seed in [*(int(s) for s in args.seeds.split(",")), "exact"]:
                fitted = svd(args.latent_dim, seed).fit(X_train)
                add({**base, "method": f"lsa-{args.latent_dim} ({'exact' if seed == 'exact' else 'seed'})",
                     "seed": None if seed == "exact" else seed,
                     **scores(fitted.transform(X_train), y_train, fitted.transform(X_test), y_test)})
        token_train, token_test = lsa_on_tokens(train, test, args.latent_dim, {})
        add({**base, "method": f"lsa-{args.latent_dim} on the model's tokens",
             **scores(token_train, y_train, token_test, y_test)})
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in variants:
                start = time.perf_counter()
                model, Z_train = fit_variant(args.latent_dim, {**VARIANTS[name], "random_state": seed}, train)
                fit_seconds = time.perf_counter() - start
                valid = [row.get("valid_loss") for row in model.net_.history]
                add({**base, "method": f"sktextae {name}", "seed": seed,
                     **scores(Z_train, y_train, model.transform(test), y_test),
                     "epochs": len(valid), "best_epoch": int(np.argmin(valid)) + 1 if None not in valid else None,
                     "spread": round(spread(Z_train)[2], 3), "fit_seconds": round(fit_seconds, 1)})
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
