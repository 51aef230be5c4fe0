"""A small classifier fine-tuned from a small autoencoder on few labels, beside LSA and the largest class.

On TREC (6 question types), for each seed, in one process on one CPU thread: ``TextAutoencoder`` at small
widths (``--latent-dim`` 32, embeddings 32, hidden 64, one layer, ``--epochs`` 4) fitted on every training
question, unlabelled; then on ``--labels`` labelled questions (a stratified sample drawn with the seed):

- ``classifier from the autoencoder``: ``TextAutoencoderClassifier(pretrained=<the autoencoder>)`` of the
  same sizes and epochs, fitted on the labelled questions;
- ``classifier from scratch``: the same without ``pretrained``;
- ``autoencoder + logreg``: LogisticRegression on the autoencoder's vectors of the labelled questions;
- ``lsa + logreg``: ``TfidfVectorizer(sublinear_tf=True, min_df=2)`` + ``TruncatedSVD`` of the same size on
  every training question, LogisticRegression on the labelled ones;
- ``largest class``: always the most frequent label among the labelled questions.

Each row: test accuracy, and for the autoencoder the spread of its training vectors (the mean standard
deviation of a unit over its mean magnitude: near 0, every question has nearly the same vector).

    python benchmarks/bench_small_classifier.py [--data ../shared/data] [--seeds 0,1,2] [--labels 200]
        [--output small_classifier_cpu]
"""

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the tokenizers' thread pool: read once, at its first use

import argparse  # noqa: E402 (after the thread setting)
import warnings  # noqa: E402

import _data  # noqa: E402
import _results  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_small_widths import spread  # noqa: E402
from sklearn.decomposition import TruncatedSVD  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sktextae import TextAutoencoder, TextAutoencoderClassifier, TruncationWarning  # noqa: E402

COLUMNS = ["method", "seed", "n_labelled", "accuracy", "spread"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--output", default="small_classifier_cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    train, y_train = _data.load_split(args.data, "trec", "train")
    test, y_test = _data.load_split(args.data, "trec", "test")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    sizes = dict(embedding_dim=32, hidden_dim=64, num_layers=1, max_epochs=args.epochs)
    rows = []

    def add(row):
        rows.append(_results.stamp({"benchmark": "small_classifier", "dataset": "trec", "latent_dim": args.latent_dim,
                                    "device": _results.device_name("cpu"), "n_labelled": args.labels, **row}))
        print({k: row.get(k) for k in COLUMNS if k in row}, flush=True)
        _results.write(args.output, rows, COLUMNS, quiet=True,
                       title=f"A classifier from a small autoencoder on {args.labels} TREC labels")

    for seed in (int(s) for s in args.seeds.split(",")):
        labelled, _ = train_test_split(np.arange(len(train)), train_size=args.labels, stratify=y_train,
                                       random_state=seed)
        texts, labels = [train[i] for i in labelled], y_train[labelled]
        values, counts = np.unique(labels, return_counts=True)
        add({"method": "largest class", "seed": seed, "accuracy": float(np.mean(y_test == values[np.argmax(counts)]))})
        lsa = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), TruncatedSVD(args.latent_dim, random_state=0))
        lsa.fit(train)
        logreg = LogisticRegression(max_iter=3000).fit(lsa.transform(texts), labels)
        add({"method": "lsa + logreg", "seed": seed, "accuracy": logreg.score(lsa.transform(test), y_test)})
        autoencoder = TextAutoencoder(args.latent_dim, **sizes, random_state=seed).fit(train)
        logreg = LogisticRegression(max_iter=3000).fit(autoencoder.transform(texts), labels)
        add({"method": "autoencoder + logreg", "seed": seed, "accuracy": logreg.score(autoencoder.transform(test), y_test),
             "spread": round(spread(autoencoder.transform(train))[2], 3)})
        for name, pretrained in (("classifier from the autoencoder", autoencoder), ("classifier from scratch", None)):
            classifier = TextAutoencoderClassifier(args.latent_dim, **sizes, random_state=seed, pretrained=pretrained)
            add({"method": name, "seed": seed, "accuracy": classifier.fit(texts, labels).score(test, y_test)})
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
