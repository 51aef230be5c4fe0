import math
from types import SimpleNamespace

import numpy as np
import pytest

from sktextae.metrics import (
    bag_token_accuracy, corpus_bleu, exact_match_rate, reconstruction_report, token_accuracy)
from sktextae.tokenization import train_tokenizer
from sktextae.vocabulary import Vocabulary


def test_token_accuracy_counts_positions_over_reference_length():
    refs = [np.array([5, 6, 7, 8]), np.array([9, 10])]
    hyps = [np.array([5, 6, 0]), np.array([9, 10, 11])]
    assert token_accuracy(refs, hyps) == pytest.approx(4 / 6)  # 2 of 4 (short), 2 of 2 (extra ignored)


def test_bag_token_accuracy_ignores_order_but_counts_repeats():
    refs = [[5, 5, 6, 7]]
    assert bag_token_accuracy(refs, [[7, 6, 5, 9]]) == pytest.approx(3 / 4)
    assert bag_token_accuracy(refs, [[7, 6, 5, 5]]) == 1.0
    assert token_accuracy(refs, [[7, 6, 5, 5]]) == 0.0


def test_exact_match_rate_on_strings_and_ids():
    assert exact_match_rate(["a b", "c"], ["a b", "c d"]) == 0.5
    assert exact_match_rate([[1, 2], [3]], [np.array([1, 2]), [3, 4]]) == 0.5


def test_empty_inputs_and_mismatched_lengths():
    assert token_accuracy([[]], [[4]]) == 1.0
    with pytest.raises(ValueError, match=r"references \(2\) and hypotheses \(1\)"):
        token_accuracy([[1], [2]], [[1]])


def test_bleu_is_one_for_identical_corpora():
    corpus = [[5, 6, 7, 8, 9], np.array([10, 11]), [12]]
    assert corpus_bleu(corpus, corpus) == pytest.approx(1.0)
    assert corpus_bleu(corpus, corpus, smooth=False, max_order=2) == pytest.approx(1.0)


def test_bleu_of_a_partial_overlap_is_between_zero_and_one():
    score = corpus_bleu([[5, 6, 7, 8, 9, 10]], [[5, 6, 7, 11, 9, 10]])
    assert 0.0 < score < 1.0
    assert corpus_bleu([[5, 6, 7, 8]], [[13, 14, 15, 16]]) == 0.0  # no unigram in common


def test_bleu_by_hand():
    refs, hyps = [[5, 6, 7, 8]], [[5, 6, 7, 9]]
    # Unigrams: 5 6 7 match, 9 does not: 3/4. Bigrams (5 6) (6 7) match, (7 9) not: 2/3, smoothed
    # (2+1)/(3+1) = 3/4. Trigrams (5 6 7) matches, (6 7 9) not: 1/2 -> 2/3. The 4-gram misses: 0/1 -> 1/2.
    # Equal lengths: no brevity penalty. BLEU = (3/4 * 3/4 * 2/3 * 1/2) ** (1/4) = (3/16) ** (1/4).
    assert corpus_bleu(refs, hyps) == pytest.approx((3 / 16) ** 0.25)
    assert corpus_bleu(refs, hyps, smooth=False) == 0.0  # the missing 4-gram zeroes the geometric mean
    # Unsmoothed up to bigrams: (3/4 * 2/3) ** (1/2) = (1/2) ** (1/2).
    assert corpus_bleu(refs, hyps, max_order=2, smooth=False) == pytest.approx(math.sqrt(0.5))


def test_bleu_clips_repeated_ngrams_and_pools_the_corpus():
    # The hypothesis repeats 5 four times; the reference holds it twice: 2 of 4 unigrams count.
    assert corpus_bleu([[5, 5, 6, 7]], [[5, 5, 5, 5]], max_order=1) == pytest.approx(0.5)
    # Counts are summed over texts before dividing: (2 + 0) / (2 + 2), not the mean of 1 and 0.
    assert corpus_bleu([[5, 6], [7, 8]], [[5, 6], [9, 10]], max_order=1) == pytest.approx(0.5)


def test_brevity_penalty_lowers_a_too_short_hypothesis():
    ref = [[5, 6, 7, 8, 9, 10]]
    # Every n-gram of 5 6 7 is right, but 3 tokens against 6: penalty exp(1 - 6/3) = exp(-1).
    assert corpus_bleu(ref, [[5, 6, 7]], max_order=2, smooth=False) == pytest.approx(math.exp(-1))
    assert corpus_bleu(ref, [[5, 6, 7]]) < corpus_bleu(ref, [[5, 6, 7, 8, 9]]) < corpus_bleu(ref, ref)
    # A longer hypothesis is not rewarded for it: its extra n-grams lower the precisions instead.
    assert corpus_bleu(ref, [[5, 6, 7, 8, 9, 10, 11]]) < 1.0


def test_bleu_with_empty_texts():
    assert corpus_bleu([[5, 6]], [[]]) == 0.0
    assert corpus_bleu([[]], [[]]) == 1.0
    assert corpus_bleu([], []) == 1.0
    assert corpus_bleu([[5, 6], []], [[5, 6], []]) == pytest.approx(1.0)
    assert corpus_bleu([[]], [[5]]) == 0.0


def test_bleu_refuses_mismatched_lengths_and_bad_orders():
    with pytest.raises(ValueError, match=r"references \(2\) and hypotheses \(1\)"):
        corpus_bleu([[5], [6]], [[5]])
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=f"max_order={bad!r} is invalid; use an integer >= 1"):
            corpus_bleu([[5]], [[5]], max_order=bad)


def fake_autoencoder(texts, reconstructions, architecture, lowercase=False):
    """Just what reconstruction_report reads from a fitted TextAutoencoder."""
    module = SimpleNamespace(is_sequence_decoder=architecture != "bow")
    tokenizer = train_tokenizer(texts, kind="word", vocab_size=50, lowercase=lowercase)
    return SimpleNamespace(
        tokenizer_=tokenizer, vocabulary_=Vocabulary(tokenizer), max_length_=20,
        net_=SimpleNamespace(module_=module), transform=lambda X: np.zeros((len(X), 2)),
        inverse_transform=lambda Z: np.array(reconstructions, dtype=object))


def test_reconstruction_report_has_bleu():
    texts = ["the cat sat on the mat", "a dog ran"]
    report = reconstruction_report(fake_autoencoder(texts, ["the cat sat on the hat", "a dog ran"], "gru"), texts)
    assert set(report) == {"token_accuracy", "bleu", "exact_match", "n_texts"}
    assert 0.0 < report["bleu"] < 1.0
    assert report["exact_match"] == 0.5
    perfect = reconstruction_report(fake_autoencoder(texts, texts, "transformer"), texts)
    assert perfect["bleu"] == pytest.approx(1.0)


def test_reconstruction_report_has_no_bleu_for_a_bag_of_words():
    texts = ["the cat sat on the mat"]
    report = reconstruction_report(fake_autoencoder(texts, ["mat the on sat cat the"], "bow"), texts)
    assert math.isnan(report["bleu"])
    assert report["token_accuracy"] == 1.0


def test_reconstruction_report_of_a_lowercasing_model_compares_with_the_lowercased_texts():
    # Such a model can only give back lowercase text: that counts as exact, and the tokens agree too.
    texts = ["The Cat sat", "a DOG ran"]
    reconstructions = ["the cat sat", "a dog ran"]
    report = reconstruction_report(fake_autoencoder(texts, reconstructions, "gru", lowercase=True), texts)
    assert report["exact_match"] == 1.0
    assert report["token_accuracy"] == 1.0 and report["bleu"] == pytest.approx(1.0)
    cased = reconstruction_report(fake_autoencoder(texts, reconstructions, "gru"), texts)
    assert cased["exact_match"] == 0.0
