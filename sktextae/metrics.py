"""How well texts are reconstructed, measured on token ids (see ``tokenization.encode``)."""

from collections import Counter
from numbers import Integral

import numpy as np


def token_accuracy(references, hypotheses):
    """Share of reference tokens that the hypothesis reproduces at the same position.

    Both are sequences of token-id sequences. A hypothesis shorter than its reference misses the
    remaining tokens; extra hypothesis tokens are not counted (exact-match rate catches them).
    """
    _check_pairs(references, hypotheses)
    correct = total = 0
    for ref, hyp in zip(references, hypotheses):
        n = min(len(ref), len(hyp))
        correct += int(np.sum(np.asarray(ref[:n]) == np.asarray(hyp[:n])))
        total += len(ref)
    return correct / total if total else 1.0


def bag_token_accuracy(references, hypotheses):
    """Share of reference tokens found in the hypothesis as a multiset, ignoring order.

    The measure for bag-of-words reconstructions, which have no word order to compare.
    """
    _check_pairs(references, hypotheses)
    correct = total = 0
    for ref, hyp in zip(references, hypotheses):
        correct += sum((Counter(np.asarray(ref).tolist()) & Counter(np.asarray(hyp).tolist())).values())
        total += len(ref)
    return correct / total if total else 1.0


def exact_match_rate(references, hypotheses):
    """Share of texts (str or token sequences) reproduced exactly."""
    _check_pairs(references, hypotheses)
    if not len(references):
        return 1.0
    return float(np.mean([_as_key(r) == _as_key(h) for r, h in zip(references, hypotheses)]))


def corpus_bleu(references, hypotheses, *, max_order=4, smooth=True):
    """Corpus-level BLEU of token-id hypotheses against one reference each (Papineni et al. 2002).

    The n-gram matches of every hypothesis, each clipped to its count in the reference, are summed
    over the corpus for n = 1 .. ``max_order``; BLEU is the geometric mean of these precisions times
    the brevity penalty ``exp(1 - r / c)`` when the hypotheses' total length ``c`` falls short of the
    references' total ``r`` (1 otherwise).

    Parameters
    ----------
    references, hypotheses : sequence of sequence of int
        Token-id sequences (lists or 1-D arrays), one hypothesis per reference.
    max_order : int, default=4
        Longest n-gram counted.
    smooth : bool, default=True
        Add one to the matched and to the total n-gram counts for n > 1 (Lin & Och 2004), so that a
        small corpus with no matching 4-gram scores above 0. Without it, any order with no match
        gives 0.

    Returns
    -------
    float
        In [0, 1]: 1 for identical corpora, and also when both are empty (nothing to get wrong);
        0 when every hypothesis is empty but some reference is not.
    """
    _check_pairs(references, hypotheses)
    if isinstance(max_order, bool) or not isinstance(max_order, Integral) or max_order < 1:
        raise ValueError(f"max_order={max_order!r} is invalid; use an integer >= 1 (4 is the usual BLEU).")
    matches, totals = np.zeros(max_order), np.zeros(max_order)
    ref_length = hyp_length = 0
    for ref, hyp in zip(references, hypotheses):
        ref, hyp = np.asarray(ref).tolist(), np.asarray(hyp).tolist()
        ref_length, hyp_length = ref_length + len(ref), hyp_length + len(hyp)
        for n in range(1, max_order + 1):
            hyp_ngrams = _ngrams(hyp, n)
            matches[n - 1] += sum((hyp_ngrams & _ngrams(ref, n)).values())  # & keeps the lower count: clipping
            totals[n - 1] += sum(hyp_ngrams.values())
    if hyp_length == 0:
        return 1.0 if ref_length == 0 else 0.0
    if smooth:
        matches[1:], totals[1:] = matches[1:] + 1, totals[1:] + 1
    if np.any(matches == 0):  # the geometric mean of a zero precision is 0 (and log(0) would warn)
        return 0.0
    log_precision = np.mean(np.log(matches / totals))
    brevity = min(0.0, 1.0 - ref_length / hyp_length)  # log of the brevity penalty
    return float(np.exp(log_precision + brevity))


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _as_key(item):
    return item if isinstance(item, str) else tuple(np.asarray(item).tolist())


def _check_pairs(references, hypotheses):
    if len(references) != len(hypotheses):
        raise ValueError(f"references ({len(references)}) and hypotheses ({len(hypotheses)}) must have "
                         f"the same length: one hypothesis per reference.")


def reconstruction_report(autoencoder, X):
    """Measure ``inverse_transform(transform(X))`` against ``X`` for a fitted ``TextAutoencoder``.

    Returns a dict with ``token_accuracy`` (positional; for ``architecture="bow"`` the order-free
    ``bag_token_accuracy``, over its ``bag_size_`` returned tokens), ``bleu`` (``corpus_bleu`` of the
    reconstructions' tokens against the texts' tokens; NaN for ``architecture="bow"``, whose
    reconstructions have no word order for n-grams to measure), ``exact_match`` (share of texts
    reproduced exactly) and ``n_texts``. Tokens are those of the model's own tokenizer, up to
    ``max_length``. For a model fitted with ``lowercase=True``, whose reconstructions are lowercase,
    a text counts as reproduced when its reconstruction equals the text lowercased; for a pretrained
    encoder's tokenizer, when it equals the text as that tokenizer normalises it
    (``vocabulary_.as_decoded``).
    """
    from .tokenization import encode
    from .validation import check_texts

    texts = check_texts(X)
    reconstructions = list(autoencoder.inverse_transform(autoencoder.transform(texts)))
    refs, _ = encode(autoencoder.tokenizer_, texts, max_length=autoencoder.max_length_)
    hyps, _ = encode(autoencoder.tokenizer_, reconstructions, max_length=autoencoder.max_length_)
    bag = not autoencoder.net_.module_.is_sequence_decoder
    accuracy = bag_token_accuracy if bag else token_accuracy
    return {"token_accuracy": accuracy(refs, hyps), "bleu": float("nan") if bag else corpus_bleu(refs, hyps),
            "exact_match": exact_match_rate(autoencoder.vocabulary_.as_decoded(texts), reconstructions),
            "n_texts": len(texts)}
