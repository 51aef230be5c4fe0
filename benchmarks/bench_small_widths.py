"""Small models, as a grid search meets them: does the from-scratch default collapse to one vector?

Fits ``TextAutoencoder`` at small widths on a stratified sample of a dataset's training texts, with
variants that change one thing each (``VARIANTS``), beside LSA at the same size, in one run. For each:
the epochs run and the best validation epoch, the spread of the training vectors (the mean over
latent units of their standard deviation across texts, against the mean magnitude of a unit: a
collapsed model maps every text to nearly one vector, so the ratio falls towards 0), and a linear
probe (StandardScaler + LogisticRegression trained on the training vectors, scored on the test split).

    python benchmarks/bench_small_widths.py [--data ../shared/data] [--dataset ag_news] [--n-train 1200]
        [--n-test 1000] [--latent-dim 16] [--variants default,noise0,lr1e-3,...] [--seeds 0]
        [--output small_widths_cpu]
"""

import argparse
import time

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import _data
import _results
from sktextae import TextAutoencoder

# The small configuration a grid search tries: latent 16, embeddings and hidden layer of 32, one layer.
SMALL = {"embedding_dim": 32, "hidden_dim": 32, "num_layers": 1, "max_length": 48}
VARIANTS = {
    "default": {},
    "noise0": {"noise": 0.0},
    "lr1e-3": {"lr": 1e-3},
    "no-early-stop": {"patience": None, "max_epochs": 60},
    "hidden256": {"hidden_dim": 256},
    "embedding128": {"embedding_dim": 128},
}


def probe(train_vectors, train_labels, test_vectors, test_labels):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(model.fit(train_vectors, train_labels).score(test_vectors, test_labels))


def spread(vectors):
    """Mean per-unit standard deviation across texts, mean per-unit magnitude, and their ratio."""
    std, magnitude = float(vectors.std(axis=0).mean()), float(np.abs(vectors).mean())
    return std, magnitude, std / magnitude if magnitude else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--output", default="small_widths_cpu")
    args = parser.parse_args()
    train, train_labels = _data.load_split(args.data, args.dataset, "train", max_texts=args.n_train)
    test, test_labels = _data.load_split(args.data, args.dataset, "test", max_texts=args.n_test)
    lsa = make_pipeline(TfidfVectorizer(sublinear_tf=True), TruncatedSVD(args.latent_dim, random_state=0))
    rows = [_results.stamp({"benchmark": "small_widths", "dataset": args.dataset, "method": f"lsa-{args.latent_dim}",
                            "probe": round(probe(lsa.fit_transform(train), train_labels, lsa.transform(test),
                                                 test_labels), 3), "device": _results.device_name("cpu")})]
    print(f"LSA-{args.latent_dim}: probe {rows[0]['probe']}", flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.variants.split(","):
            params = {**SMALL, **VARIANTS[name], "random_state": seed}
            model = TextAutoencoder(args.latent_dim, **params)
            start = time.perf_counter()
            train_vectors = model.fit_transform(train)
            fit_seconds = time.perf_counter() - start
            history = model.net_.history
            valid = [row.get("valid_loss") for row in history]
            std, magnitude, ratio = spread(train_vectors)
            row = {"benchmark": "small_widths", "dataset": args.dataset, "method": f"sktextae {name}", "seed": seed,
                   "epochs": len(history), "best_epoch": int(np.argmin(valid)) + 1 if None not in valid else None,
                   "unit_std": round(std, 3), "unit_magnitude": round(magnitude, 3), "spread": round(ratio, 3),
                   "probe": round(probe(train_vectors, train_labels, model.transform(test), test_labels), 3),
                   "fit_seconds": round(fit_seconds, 1), "device": _results.device_name("cpu")}
            rows.append(_results.stamp(row))
            print(f"{name} seed {seed}: {row['epochs']} epochs (best {row['best_epoch']}), spread {row['spread']}, "
                  f"probe {row['probe']}", flush=True)
            _results.write(args.output, rows, ["method", "seed", "epochs", "best_epoch", "unit_std", "unit_magnitude",
                                               "spread", "probe", "fit_seconds"],
                           title=f"Small widths on {args.dataset} ({args.n_train} training texts, latent "
                                 f"{args.latent_dim}, embeddings and hidden {SMALL['hidden_dim']})", quiet=True)
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
