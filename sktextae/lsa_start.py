"""The LSA start of a TF-IDF bag-of-words encoder (``nn.BagOfWordsEncoder``): the bigrams it counts, its
IDF, and token embeddings that make its projection of a text the text's LSA vector; and the start of the
bag decoder beside it, which first predicts the texts' token frequencies."""

import numpy as np
import scipy.sparse
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.preprocessing import normalize

from . import bigram_choice
from .nn.bow import BIGRAM_WEIGHT, LSA_START_STD
from .token_ids import TokenIds
from .tokenization import BOS_ID, EOS_ID, MASK_ID, PAD_ID

# What the bag of words' TF-IDF leaves out: the tokens that are no part of a text (padding, the BOS and EOS
# around it, the mask of noise_type="mask"). An unknown word counts, as a word the vocabulary cannot name:
# a test text's unknown words (rare, so weighed high) keep their share of its length.
NOT_TEXT = (PAD_ID, BOS_ID, EOS_ID, MASK_ID)
# What ``start_bag_decoder`` adds to each token's count: a token that no training text holds starts well
# below the others, not at minus infinity.
BAG_SMOOTHING = 0.1


@torch.no_grad()
def start_from_lsa(encoder, sequences, *, ignored=NOT_TEXT, max_texts=20000):
    """Start a TF-IDF ``nn.BagOfWordsEncoder`` from LSA of its training texts: its projection becomes LSA's.

    LSA here is scikit-learn's ``TfidfTransformer(sublinear_tf=True)`` (smooth IDF, L2-normalised rows)
    of the texts' token counts over the encoder's own tokens, then ``TruncatedSVD`` of ``embedding_dim``
    components (``random_state=0``; fitted on up to ``max_texts`` of the texts, a fixed sample, where
    the IDF is of them all). The ``ignored`` ids (``NOT_TEXT``: the encoder reads an EOS after every
    text) are left out, as ``TfidfVectorizer`` leaves out what is not a word. The encoder's
    ``idf`` becomes those IDFs (0 for ignored ids and padding, which it then skips) and each token's
    embedding its loadings on the components: the encoder's projection of a text is then the text's LSA
    vector, where a random start is nearly the same vector for every text (from which a small model,
    trained with early stopping, may never leave). Where the encoder has ``terms``, each token counts as
    its term, as the encoder counts it. Tokens that no text holds start at 0, and so do those the encoder
    reads as another or as nothing (a sequence decoder that shares the table learns them); the whole table
    is scaled so that the projections of the sample's texts spread by ``nn.bow.LSA_START_STD`` per unit.
    With fewer texts than ``embedding_dim``, only as many columns as texts are filled; the others start at 0.
    Nothing changes when the texts hold no token that counts.

    An encoder that counts ``bigrams`` counts, among the bigrams of the texts' words (``bigram_choice.count``),
    those that at least two texts hold, the most frequent first (ties in the order of their keys), up to its
    number; they are columns of the TF-IDF matrix beside the words, their IDF scaled by
    ``nn.bow.BIGRAM_WEIGHT`` before the rows are L2-normalised, as the encoder weighs them.
    """
    if getattr(encoder, "weighting", None) != "tfidf":
        raise ValueError(f"start_from_lsa starts a TF-IDF bag-of-words encoder, got {type(encoder).__name__} "
                         f"with weighting={getattr(encoder, 'weighting', None)!r}.")
    vocab_size, width = encoder.embedding.weight.shape
    sequences = TokenIds.of(sequences)
    lengths = sequences.lengths
    if lengths.sum() == 0:
        return
    ids = sequences.flat()  # (T,)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}) (the encoder's vocabulary), got "
                         f"{int(ids.min())} to {int(ids.max())}.")
    if encoder.terms is not None:  # what the encoder counts: each token as its term
        ids = encoder.terms.cpu().numpy()[ids]
    counted = np.ones(vocab_size)
    counted[[*ignored, *([encoder.embedding.padding_idx] if encoder.embedding.padding_idx is not None else [])]] = 0
    # Built row by row as it is laid out (duplicates summed in place): a (row, id) pair per token would take
    # three times the memory, in proportion to the corpus.
    # A copy of the ids: scipy sorts them in place, and they may be the texts' own (TokenIds.flat).
    counts = scipy.sparse.csr_matrix((counted[ids], np.array(ids, dtype=np.int32),
                                      np.concatenate([[0], np.cumsum(lengths)])), shape=(len(sequences), vocab_size))
    counts.sum_duplicates()
    counts.eliminate_zeros()
    if counts.nnz == 0:
        return
    bigrams = _choose_bigrams(encoder, ids, lengths, counted) if getattr(encoder, "bigrams", 0) else None
    if bigrams is not None:
        counts = scipy.sparse.hstack([counts, bigrams]).tocsr()  # (N, V + bigrams chosen)
    scale = np.ones(counts.shape[1])
    scale[vocab_size:] = BIGRAM_WEIGHT
    transformer = TfidfTransformer(sublinear_tf=True, norm=None).fit(counts)  # the IDF of all the texts
    idf = transformer.idf_ * scale
    encoder.idf.copy_(torch.from_numpy(idf[:vocab_size] * counted))
    held = np.bincount(counts.indices, minlength=counts.shape[1]) > 0  # tokens (and bigrams) that count, in some text
    if counts.shape[0] > max_texts:
        counts = counts[np.sort(np.random.default_rng(0).choice(counts.shape[0], size=max_texts, replace=False))]
    sample = normalize(transformer.transform(counts) @ scipy.sparse.diags(scale))  # (at most max_texts, V + K)
    rank = min(width, sample.shape[0], sample.shape[1] - 1)
    table = np.zeros((sample.shape[1], width))
    table[:, :rank] = TruncatedSVD(rank, random_state=0).fit(sample).components_.T * held[:, None]  # (V + K, rank)
    # The sample's projections (at most (max_texts, C)): the whole corpus' would take memory in proportion to it.
    spread = float(np.asarray(sample @ table).std(axis=0).mean())
    table = torch.from_numpy(table * (LSA_START_STD / spread if spread > 0 else 1.0))
    encoder.embedding.weight.copy_(table[:vocab_size])
    if getattr(encoder, "bigrams", 0):
        chosen = counts.shape[1] - vocab_size
        encoder.bigram_embedding.weight.zero_()
        encoder.bigram_embedding.weight[1:chosen + 1] = table[vocab_size:]
        encoder.bigram_idf.zero_()
        encoder.bigram_idf[1:chosen + 1] = torch.from_numpy(idf[vocab_size:])


@torch.no_grad()
def start_bag_decoder(decoder, sequences, *, smoothing=BAG_SMOOTHING):
    """Start a bag decoder (``nn.BagDecoder``) at the texts' token frequencies: the bias of its output layer
    becomes the log of each token's share of the tokens of ``sequences`` (its targets), each count plus
    ``smoothing``, so that its first prediction for any latent vector is that share. From 0, the first
    gradients would teach it those frequencies through the latent vectors, moving an encoder started from
    LSA away from its start (``benchmarks/bench_width_grid.py`` measures what this start keeps). Ids must
    lie in the decoder's vocabulary; nothing changes when the texts hold no token."""
    bias = decoder.output.bias
    sequences = TokenIds.of(sequences)
    ids = sequences.flat()
    if len(ids) == 0:
        return
    if ids.min() < 0 or ids.max() >= bias.shape[0]:
        raise ValueError(f"token ids must lie in [0, {bias.shape[0]}) (the decoder's vocabulary), got "
                         f"{int(ids.min())} to {int(ids.max())}.")
    counts = np.bincount(ids, minlength=bias.shape[0]) + smoothing
    bias.copy_(torch.from_numpy(np.log(counts / counts.sum())))


def _choose_bigrams(encoder, terms, lengths, counted):
    """Fill the encoder's bigram table with the bigrams it will count; return their counts in each text
    ((N, chosen) CSR, column j for row j + 1 of ``bigram_embedding``)."""
    table_keys, table_rows, counts = bigram_choice.choose(
        terms, lengths, counted, vocab_size=encoder.embedding.num_embeddings, unknown=encoder.unknown,
        size=encoder.bigram_keys.shape[0], limit=encoder.bigrams)
    encoder.bigram_keys.copy_(torch.from_numpy(table_keys))
    encoder.bigram_rows.copy_(torch.from_numpy(table_rows))
    return counts
