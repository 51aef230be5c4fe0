"""Plain, denoising and variational objectives side by side, with LSA at the same latent size.

For each dataset: fit on the training texts without labels, then measure on the test split the
linear-probe accuracy (LogisticRegression trained on the training vectors), KMeans NMI (k = the
number of classes), and for sktextae the reconstruction token accuracy and BLEU of
``inverse_transform(transform(X))``. LSA is TfidfVectorizer + TruncatedSVD at the same dimension.

    python benchmarks/bench_objectives.py [--data ../shared/data] [--datasets ag_news,sst2]
        [--architecture gru] [--latent-dim 64] [--max-epochs 10] [--max-train 6000]
"""

import argparse
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import _data
import _results
from sktextae import TextAutoencoder
from sktextae.metrics import reconstruction_report

# Every objective sets noise: the package default (0.6) is the denoising objective.
OBJECTIVES = {"plain": {"noise": 0.0}, "denoising": {"noise": 0.6}, "variational": {"variational": True, "noise": 0.0}}


def linear_probe():
    """The classifier every benchmark's probe trains on the vectors."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))


# KMeans NMI varies with KMeans' own seed (its n_init restarts included) by a few points on these test
# splits: each figure is the mean over KMEANS_SEEDS, with their standard deviation beside it.
KMEANS_SEEDS = 5


def probe_and_cluster(Z_train, y_train, Z_test, y_test, *, random_state):
    probe = linear_probe().fit(Z_train, y_train)
    scaled = StandardScaler().fit_transform(Z_test)
    scores = [normalized_mutual_info_score(y_test, KMeans(n_clusters=len(np.unique(y_train)), n_init=10,
                                                          random_state=random_state + i).fit_predict(scaled))
              for i in range(KMEANS_SEEDS)]
    return {"accuracy": probe.score(Z_test, y_test), "nmi": float(np.mean(scores)), "nmi_std": float(np.std(scores))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="ag_news,sst2")
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-train", type=int, default=6000, help="stratified subsample of the training texts")
    parser.add_argument("--max-test", type=int, default=2000)
    parser.add_argument("--max-decode", type=int, default=500, help="test texts decoded for reconstruction")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--output", default="objectives")
    args = parser.parse_args()
    device = _results.device_name()
    rows = []
    for dataset in args.datasets.split(","):
        X_train, y_train = _data.load_split(args.data, dataset, "train", max_texts=args.max_train)
        X_test, y_test = _data.load_split(args.data, dataset, "test", max_texts=args.max_test)
        common = {"benchmark": "objectives", "dataset": dataset, "latent_dim": args.latent_dim,
                  "n_train": len(X_train), "n_test": len(X_test), "device": device}

        start = time.perf_counter()
        lsa = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2),
                            TruncatedSVD(args.latent_dim, random_state=0)).fit(X_train)
        row = {**common, "method": "lsa", "fit_seconds": round(time.perf_counter() - start, 1)}
        row.update(probe_and_cluster(lsa.transform(X_train), y_train, lsa.transform(X_test), y_test, random_state=0))
        rows.append(_results.stamp(row))

        for objective in args.objectives.split(","):
            ae = TextAutoencoder(args.latent_dim, architecture=args.architecture, embedding_dim=128, hidden_dim=256,
                                 num_layers=1, max_length=128, max_epochs=args.max_epochs, batch_size=32,
                                 lr=3e-3 if args.architecture != "transformer" else 1e-3, random_state=0,
                                 **OBJECTIVES[objective])
            start = time.perf_counter()
            Z_train = ae.fit_transform(X_train)
            row = {**common, "method": f"sktextae-{args.architecture}-{objective}",
                   "fit_seconds": round(time.perf_counter() - start, 1), "epochs": len(ae.net_.history)}
            row.update(probe_and_cluster(Z_train, y_train, ae.transform(X_test), y_test, random_state=0))
            report = reconstruction_report(ae, X_test[:args.max_decode])
            row.update(token_accuracy=report["token_accuracy"], bleu=report["bleu"])
            rows.append(_results.stamp(row))
            _results.write(args.output, rows, COLUMNS, title=TITLE)  # keep what is done if a later run fails
    _results.write(args.output, rows, COLUMNS, title=TITLE)


COLUMNS = ["dataset", "method", "latent_dim", "accuracy", "nmi", "nmi_std", "token_accuracy", "bleu", "n_train", "n_test",
           "epochs", "fit_seconds", "device"]
TITLE = "Objectives: linear probe, KMeans NMI and test-set reconstruction, beside LSA"

if __name__ == "__main__":
    main()
