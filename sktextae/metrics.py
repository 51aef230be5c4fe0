"""How well texts are reconstructed, measured on token ids (see ``tokenization.encode``)."""

from collections import Counter

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


def _as_key(item):
    return item if isinstance(item, str) else tuple(np.asarray(item).tolist())


def _check_pairs(references, hypotheses):
    if len(references) != len(hypotheses):
        raise ValueError(f"references ({len(references)}) and hypotheses ({len(hypotheses)}) must have "
                         f"the same length: one hypothesis per reference.")


def reconstruction_report(autoencoder, X):
    """Measure ``inverse_transform(transform(X))`` against ``X`` for a fitted ``TextAutoencoder``.

    Returns a dict with ``token_accuracy`` (positional; for ``architecture="bow"`` the order-free
    ``bag_token_accuracy``, over its ``bag_size_`` returned tokens), ``exact_match`` (share of texts
    reproduced exactly) and ``n_texts``. Tokens are those of the model's own tokenizer, up to
    ``max_length``.
    """
    from .tokenization import encode
    from .validation import check_texts

    texts = check_texts(X)
    reconstructions = list(autoencoder.inverse_transform(autoencoder.transform(texts)))
    refs, _ = encode(autoencoder.tokenizer_, texts, max_length=autoencoder.max_length)
    hyps, _ = encode(autoencoder.tokenizer_, reconstructions, max_length=autoencoder.max_length)
    accuracy = bag_token_accuracy if autoencoder.architecture == "bow" else token_accuracy
    return {"token_accuracy": accuracy(refs, hyps), "exact_match": exact_match_rate(texts, reconstructions),
            "n_texts": len(texts)}
