"""Does training learn? Each architecture reconstructs its training sentences far above chance.

The same configuration as benchmarks/bench_reconstruction.py, whose results (all four
architectures, with the chance baselines) are in benchmarks/results/reconstruction.md.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from bench_reconstruction import CONFIG, chance, short_sentences  # noqa: E402

from sktextae import TextAutoencoder  # noqa: E402
from sktextae.datasets import load_stdlib_docstrings  # noqa: E402
from sktextae.metrics import reconstruction_report  # noqa: E402


@pytest.fixture(scope="module")
def sentences():
    texts = short_sentences(300)
    assert len(texts) == 300
    return texts


@pytest.mark.parametrize("architecture", ["transformer", "gru", "lstm"])
def test_sequence_models_give_back_most_training_sentences_exactly(sentences, architecture):
    ae = TextAutoencoder(architecture=architecture, max_epochs=40, **CONFIG).fit(sentences)
    report = reconstruction_report(ae, sentences)
    assert report["token_accuracy"] >= 0.9 > 3 * chance(ae, sentences)
    assert report["exact_match"] >= 0.8
    assert ae.net_.history[-1, "train_loss"] < ae.net_.history[0, "train_loss"] / 5


def test_bag_of_words_recovers_most_tokens(sentences):
    ae = TextAutoencoder(architecture="bow", max_epochs=40, **CONFIG).fit(sentences)
    report = reconstruction_report(ae, sentences)
    assert report["token_accuracy"] >= 0.7
    assert report["token_accuracy"] > 2 * chance(ae, sentences)


def test_small_bag_of_words_model_keeps_texts_apart():
    # The small widths a grid search tries: from a random start this model maps every text to nearly one
    # vector (spread about 0.14 on these texts) when early stopping ends it; fit starts its encoder from LSA
    # of the training texts (see bench_small_widths.py).
    texts = load_stdlib_docstrings().data[:600]
    ae = TextAutoencoder(16, embedding_dim=32, hidden_dim=32, num_layers=1, max_length=48, random_state=0).fit(texts)
    vectors = ae.transform(texts)
    assert vectors.std(axis=0).mean() / np.abs(vectors).mean() > 0.5
