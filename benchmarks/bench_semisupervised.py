"""Semi-supervised classification with few labels, and novelty detection, beside non-neural baselines.

For each dataset and label fraction (1%, 10%, 100%): a stratified labelled subset of the training
texts (fixed seed, at least one text per class; the smaller subsets nested in the larger), every
other training label set to -1. On the test split, the accuracy of

- ``lsa-logreg``: TfidfVectorizer + TruncatedSVD fitted on all the training texts (they see the same
  unlabelled texts as the autoencoders), LogisticRegression on the labelled subset only;
- ``sktextae-<architecture>-classifier``: ``TextAutoencoderClassifier`` trained from scratch on all
  the training texts, the unlabelled ones only through the reconstruction loss;
- ``sktextae-<architecture>-pretrained-classifier`` (``--with-pretrained``): the same, fine-tuned
  from a ``TextAutoencoder`` pretrained once per dataset on all the training texts without labels
  (its training time is ``pretrain_seconds``, not counted in ``fit_seconds``).

The autoencoders keep their default early stopping: 10% of the training texts, labelled or not,
are held out for validation, so the classifiers train on about 90% of the labelled subset.

Novelty detection (``--novelty A:B``): a ``TextAutoencoder`` fitted on A's training texts (the
pretrained one above when there is one) scores A's test texts (inliers) and B's test texts
(outliers) with ``score_samples``, the mean log-likelihood per token; ROC AUC of telling them apart,
beside a unigram model of A's training texts (CountVectorizer counts, add-one smoothing, one
bucket for unseen words) scoring each text by the mean log-probability of its words.

    python benchmarks/bench_semisupervised.py [--data ../shared/data] [--datasets ag_news,trec]
        [--fractions 0.01,0.1,1.0] [--architecture gru] [--latent-dim 64] [--max-epochs 10]
        [--max-train 6000] [--max-test 2000] [--with-pretrained | --no-with-pretrained]
        [--novelty ag_news:trec] [--output semisupervised]
"""

import argparse
import time

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

import _data
import _results
from sktextae import TextAutoencoder, TextAutoencoderClassifier


def labelled_subset(labels, fraction, *, random_state=0):
    """Indices of a stratified ``fraction`` of ``labels``, at least one per class.

    One fixed permutation per class, so the subset of a smaller fraction lies inside a larger one's.
    """
    rng = np.random.RandomState(random_state)
    keep = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        keep.append(members[:max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(keep))


def model_params(args):
    """The sizes of bench_objectives.py."""
    return dict(architecture=args.architecture, embedding_dim=128, hidden_dim=256, num_layers=1, max_length=128,
                max_epochs=args.max_epochs, batch_size=32, lr=3e-3 if args.architecture != "transformer" else 1e-3,
                noise=0.0, random_state=0)


def unigram_scores(train_texts, texts):
    """Mean log-probability of each text's words under an add-one-smoothed unigram model of ``train_texts``.

    Words never seen in training share one extra bucket; a text without words scores 0.
    """
    vectorizer = CountVectorizer().fit(train_texts)
    counts = np.asarray(vectorizer.transform(train_texts).sum(axis=0)).ravel()  # (V,)
    total = counts.sum() + len(counts) + 1  # add one to every word and to the unseen-word bucket
    log_prob, log_prob_unseen = np.log((counts + 1) / total), np.log(1 / total)
    analyzer = vectorizer.build_analyzer()
    n_words = np.array([len(analyzer(text)) for text in texts], dtype=np.float64)
    X = vectorizer.transform(texts)  # (n, V) counts of the words seen in training
    n_seen = np.asarray(X.sum(axis=1)).ravel()
    log_likelihood = X @ log_prob + (n_words - n_seen) * log_prob_unseen
    return np.divide(log_likelihood, n_words, out=np.zeros_like(n_words), where=n_words > 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="ag_news,trec")
    parser.add_argument("--fractions", default="0.01,0.1,1.0", help="fractions of the training texts labelled")
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-train", type=int, default=6000, help="stratified subsample of the training texts")
    parser.add_argument("--max-test", type=int, default=2000)
    parser.add_argument("--with-pretrained", action=argparse.BooleanOptionalAction, default=True,
                        help="also fine-tune from an autoencoder pretrained on the training texts")
    parser.add_argument("--novelty", default="ag_news:trec",
                        help="comma-separated INLIERS:OUTLIERS dataset pairs; empty for none")
    parser.add_argument("--output", default="semisupervised")
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    pairs = [pair.split(":") for pair in args.novelty.split(",") if pair]
    if any(len(pair) != 2 for pair in pairs):
        parser.error(f"--novelty takes INLIERS:OUTLIERS pairs such as ag_news:trec, got {args.novelty!r}.")
    device = _results.device_name()
    params = model_params(args)
    rows, novelty_rows = [], []
    pretrained = {}  # dataset -> (fitted TextAutoencoder, seconds), reused by the novelty rows

    def record(row):  # write after every row: keep what is done if a later one fails
        if row["benchmark"] == "novelty":
            novelty_rows.append(_results.stamp(row))
            _results.write(f"{args.output}_novelty", novelty_rows, NOVELTY_COLUMNS, title=NOVELTY_TITLE)
        else:
            rows.append(_results.stamp(row))
            _results.write(args.output, rows, COLUMNS, title=TITLE)

    for dataset in args.datasets.split(","):
        X_train, y_train = _data.load_split(args.data, dataset, "train", max_texts=args.max_train)
        X_test, y_test = _data.load_split(args.data, dataset, "test", max_texts=args.max_test)
        if args.with_pretrained:
            start = time.perf_counter()
            ae = TextAutoencoder(args.latent_dim, **params).fit(X_train)
            pretrained[dataset] = ae, round(time.perf_counter() - start, 1)

        for fraction in fractions:
            labelled = labelled_subset(y_train, fraction)
            y_partial = np.full_like(y_train, -1)
            y_partial[labelled] = y_train[labelled]
            common = {"benchmark": "semisupervised", "dataset": dataset, "label_fraction": fraction,
                      "n_labelled": len(labelled), "latent_dim": args.latent_dim, "n_train": len(X_train),
                      "n_test": len(X_test), "device": device}

            start = time.perf_counter()
            lsa = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2),
                                TruncatedSVD(args.latent_dim, random_state=0), LogisticRegression(max_iter=3000))
            lsa[:-1].fit(X_train)  # unsupervised, on every training text
            lsa[-1].fit(lsa[:-1].transform([X_train[i] for i in labelled]), y_train[labelled])
            fit_seconds = round(time.perf_counter() - start, 1)
            record({**common, "method": "lsa-logreg", "accuracy": lsa.score(X_test, y_test),
                    "fit_seconds": fit_seconds})

            starts = [("classifier", None)]
            if args.with_pretrained:
                starts.append(("pretrained-classifier", pretrained[dataset]))
            for name, start_from in starts:
                clf = TextAutoencoderClassifier(args.latent_dim, **params,
                                                pretrained=None if start_from is None else start_from[0])
                start = time.perf_counter()
                clf.fit(X_train, y_partial)
                fit_seconds = round(time.perf_counter() - start, 1)
                row = {**common, "method": f"sktextae-{args.architecture}-{name}",
                       "accuracy": clf.score(X_test, y_test), "fit_seconds": fit_seconds,
                       "epochs": len(clf.net_.history)}
                if start_from is not None:
                    row["pretrain_seconds"] = start_from[1]
                record(row)

    for inliers, outliers in pairs:
        X_train, _ = _data.load_split(args.data, inliers, "train", max_texts=args.max_train)
        X_in, _ = _data.load_split(args.data, inliers, "test", max_texts=args.max_test)
        X_out, _ = _data.load_split(args.data, outliers, "test", max_texts=args.max_test)
        is_inlier = np.r_[np.ones(len(X_in), dtype=int), np.zeros(len(X_out), dtype=int)]
        common = {"benchmark": "novelty", "dataset": f"{inliers}-vs-{outliers}", "n_train": len(X_train),
                  "n_inliers": len(X_in), "n_outliers": len(X_out), "device": device}

        start = time.perf_counter()
        scores = unigram_scores(X_train, X_in + X_out)
        record({**common, "method": "unigram-add-one", "roc_auc": roc_auc_score(is_inlier, scores),
                "fit_seconds": round(time.perf_counter() - start, 1)})

        if inliers not in pretrained:  # not fitted above: fit it now
            start = time.perf_counter()
            ae = TextAutoencoder(args.latent_dim, **params).fit(X_train)
            pretrained[inliers] = ae, round(time.perf_counter() - start, 1)
        ae, fit_seconds = pretrained[inliers]
        scores = ae.score_samples(X_in + X_out)
        record({**common, "method": f"sktextae-{args.architecture}-autoencoder", "latent_dim": args.latent_dim,
                "roc_auc": roc_auc_score(is_inlier, scores), "fit_seconds": fit_seconds,
                "epochs": len(ae.net_.history)})


COLUMNS = ["dataset", "method", "label_fraction", "n_labelled", "latent_dim", "accuracy", "n_train", "n_test",
           "epochs", "fit_seconds", "pretrain_seconds", "device"]
TITLE = "Semi-supervised classification: test accuracy with 1%, 10% and 100% of the training labels"
NOVELTY_COLUMNS = ["dataset", "method", "latent_dim", "roc_auc", "n_train", "n_inliers", "n_outliers", "epochs",
                   "fit_seconds", "device"]
NOVELTY_TITLE = "Novelty detection: ROC AUC of inlier test texts against another dataset's (higher score = inlier)"

if __name__ == "__main__":
    main()
