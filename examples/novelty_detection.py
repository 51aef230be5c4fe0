"""Novelty detection with ``TextAutoencoder.score_samples``: which texts are unlike the training texts?
====================================================================================================

``score_samples(X)`` encodes each text, decodes it back, and returns the mean log-likelihood per
token of the text under the model: how well the autoencoder reconstructs it, in nats per token
(always <= 0). Texts like the training texts score high; lower is more unusual. Averaging per token
makes long and short texts comparable.

This example fits a small GRU autoencoder on the first paragraphs of the docstrings of four standard
library modules about mail and the web (``email``, ``mailbox``, ``http``, ``urllib``), the
in-distribution texts, read from this Python's own installation (no download). It then scores
held-out docstrings of those modules and as many docstrings of the other modules (out of
distribution), and prints

- the ROC AUC of telling them apart by score (1 is perfect, 0.5 is chance), beside a unigram model
  of the training texts' words as a reference;
- what a threshold at the 5th percentile of the scores of other held-out in-distribution texts
  (a calibration set) flags;
- the most and the least typical test texts.

Run it with::

    python examples/novelty_detection.py

It takes a few minutes at most on 2 CPU cores. On a machine busy with other work, run it as
``OMP_NUM_THREADS=1 python examples/novelty_detection.py``: PyTorch's threads then stop competing for
the cores. The corpus depends on
the Python version, so the numbers change a little between interpreters.
"""

import textwrap
import time

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from sktextae import TextAutoencoder
from sktextae.datasets import load_stdlib_docstrings

IN_DISTRIBUTION = ["email", "http", "mailbox", "urllib"]


def unigram_scores(train_texts, texts):
    """Mean log-probability of each text's words under an add-one-smoothed unigram model of ``train_texts``
    (unseen words share one bucket): a reference that knows word frequencies and nothing else."""
    vectorizer = CountVectorizer().fit(train_texts)
    counts = np.asarray(vectorizer.transform(train_texts).sum(axis=0)).ravel()  # (n_words,)
    total = counts.sum() + len(counts) + 1
    log_prob, log_prob_unseen = np.log((counts + 1) / total), np.log(1 / total)
    analyzer = vectorizer.build_analyzer()
    n_words = np.array([len(analyzer(text)) for text in texts], dtype=np.float64)
    X = vectorizer.transform(texts)  # (n_texts, n_words) counts of the words seen in training
    n_seen = np.asarray(X.sum(axis=1)).ravel()
    log_likelihood = X @ log_prob + (n_words - n_seen) * log_prob_unseen
    return np.divide(log_likelihood, n_words, out=np.zeros_like(n_words), where=n_words > 0)


def show(rows, title):
    print(f"\n{title}")
    for score, module, text in rows:
        tag = "in " if module in IN_DISTRIBUTION else "OUT"
        print(f"  {score:6.2f}  {tag} {module:<12} {textwrap.shorten(text, 90)}")


def main():
    corpus = load_stdlib_docstrings(max_words=25)
    texts, modules = np.array(corpus.data, dtype=object), np.array(corpus.target_names, dtype=object)[corpus.target]
    inside = np.isin(modules, IN_DISTRIBUTION)
    train_index, held_out_index = train_test_split(np.flatnonzero(inside), test_size=0.25,
                                                   stratify=modules[inside], random_state=0)
    train_index, calibration_index = train_test_split(train_index, test_size=0.2, stratify=modules[train_index],
                                                      random_state=0)
    outside_index = np.random.default_rng(0).choice(np.flatnonzero(~inside), size=len(held_out_index), replace=False)
    train_texts = texts[train_index].tolist()
    test_index = np.r_[held_out_index, outside_index]
    test_texts, test_modules = texts[test_index].tolist(), modules[test_index]
    is_inlier = np.r_[np.ones(len(held_out_index), dtype=int), np.zeros(len(outside_index), dtype=int)]
    print(f"Training on {len(train_texts)} docstrings of {', '.join(IN_DISTRIBUTION)}; testing on "
          f"{len(held_out_index)} held-out ones and {len(outside_index)} of {len(np.unique(modules[outside_index]))} "
          f"other modules.")

    start = time.perf_counter()
    ae = TextAutoencoder(latent_dim=32, architecture="gru", embedding_dim=64, hidden_dim=128, num_layers=1,
                         vocab_size=2000, max_length=96, noise=0.0, max_epochs=20, batch_size=64, lr=3e-3,
                         validation_fraction=0, patience=None, random_state=0).fit(train_texts)
    print(f"Trained for {len(ae.net_.history)} epochs in {time.perf_counter() - start:.0f} s on {ae.device_}.")

    scores = ae.score_samples(test_texts)  # mean log-likelihood per token: lower = more unusual
    print(f"\nMean score: held-out in-distribution {scores[is_inlier == 1].mean():.2f}, "
          f"other modules {scores[is_inlier == 0].mean():.2f} (nats per token)")
    print(f"ROC AUC, autoencoder score_samples:  {roc_auc_score(is_inlier, scores):.3f}")
    reference = roc_auc_score(is_inlier, unigram_scores(train_texts, test_texts))
    print(f"ROC AUC, unigram model (reference): {reference:.3f}")

    # A threshold: flag what scores below 95% of in-distribution texts. Measured on texts the model did
    # not train on: it reconstructs its own training texts better than new ones, even of the same kind.
    train_threshold = np.percentile(ae.score_samples(train_texts), 5)
    threshold = np.percentile(ae.score_samples(texts[calibration_index].tolist()), 5)
    flagged = scores < threshold
    print(f"\nFlagged as novel below {threshold:.2f}, the 5th percentile of {len(calibration_index)} held-out "
          f"calibration texts (of the training texts: {train_threshold:.2f}):\n"
          f"{flagged[is_inlier == 0].mean():.0%} of the other modules' test texts and "
          f"{flagged[is_inlier == 1].mean():.0%} of the in-distribution ones.")

    order = np.argsort(scores)
    rows = [(scores[i], test_modules[i], test_texts[i]) for i in order]
    show(rows[::-1][:5], "Most typical test texts (highest scores):")
    show(rows[:5], "Least typical test texts (lowest scores):")


if __name__ == "__main__":
    main()
