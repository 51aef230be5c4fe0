"""Bag of words: an encoder of the text's TF-IDF-weighted tokens (LSA's input, which it can start from),
and a decoder that predicts the text's bag of tokens (one distribution over the vocabulary, word order
ignored)."""

import torch
from torch import nn

from . import bigrams as bigram_table
from .base import masked_mean, output_layer

# How far apart the LSA start (``lsa_start.start_from_lsa``) puts the training texts: the standard deviation
# across them of each unit of their projection (averaged over units), the scale of input the MLP's first
# layer is initialised for.
LSA_START_STD = 1.0
# How the encoder weighs a text's tokens: "tfidf", or "mean" (the mean of their embeddings, which models
# saved by sktextae before the TF-IDF encoder hold).
WEIGHTINGS = ("tfidf", "mean")
# What a TF-IDF encoder counts: "bigrams" (the words, and each two words next to each other that the training
# texts repeat: the ``bigrams`` of ``BagOfWordsEncoder``), "words" (the tokens of each word, as ``terms`` maps
# them: the vocabulary's ``bag_terms``), or "tokens" (every token, as models saved by sktextae before words
# count them).
COUNTS = ("bigrams", "words", "tokens")
# How much a bigram weighs beside a word: its IDF is multiplied by this, so that a text's words keep most of
# its TF-IDF vector (benchmarks/bench_lsa_bigrams.py measures LSA's probe with bigrams at 1 and at 0.5).
BIGRAM_WEIGHT = 0.5


def _mlp(*, in_dim, hidden_dim, num_layers, dropout):
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class BagOfWordsEncoder(nn.Module):
    """(B, T) ids -> (B, output_dim): a text as a weighted sum of its token embeddings, and an MLP of it.

    ``weighting="tfidf"``: each token weighs its sublinear TF-IDF (``1 + log(count)`` times its IDF, the
    ``idf`` buffer that ``lsa_start.start_from_lsa`` fills; a token of IDF 0 is ignored), L2-normalised over the
    text, as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` weighs it. The weighted sum of the
    embeddings (the *projection*) is then LSA's projection when the table holds LSA's components. The
    output is the MLP's output beside the projection (``output_dim = hidden_dim + embedding_dim``;
    ``projection`` is the slice of its columns), so that a layer reading it can start from the
    projection alone and training adds what the MLP finds.

    ``terms``, a (V,) tensor of ids (TF-IDF only), names the token each token counts as: the encoder reads
    ``terms[input_ids]`` where it reads ids, so tokens of one term share its count, IDF and embedding, and a
    token whose term is 0 (padding) counts as nothing. It is no weight of the model: the vocabulary gives
    it (``Vocabulary.bag_terms``) whenever the model is built. None counts every token as itself.

    ``bigrams`` (TF-IDF with ``terms`` only) is how many bigrams the encoder can count beside the words: two
    terms at neighbouring positions, neither of them nothing (0) nor an unknown word (``unknown``), each of
    the bigrams that ``lsa_start.start_from_lsa`` chose counting as a term of its own. Their embeddings
    (``bigram_embedding``, row 0 for none) add to the projection, their TF-IDF weights to the text's vector
    (which ``BIGRAM_WEIGHT`` scales in ``bigram_idf``). Which bigrams count is held in a hash table of their
    keys (``bigram_keys``, -1 in an empty slot) and rows (``bigram_rows``): see ``nn.bigrams``. 0 counts
    no bigram. ``unknown`` is the id of the unknown word (the package's UNK).

    ``weighting="mean"``: the MLP of the mean of the token embeddings (``output_dim = hidden_dim``), the
    encoder of models saved by earlier versions.
    """

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout, weighting="tfidf", terms=None,
                 bigrams=0, unknown=3):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self.weighting = weighting
        if terms is not None:
            terms = torch.as_tensor(terms, dtype=torch.long, device="cpu")
            if weighting != "tfidf" or terms.shape != (vocab_size,) or not bool(((terms >= 0) & (terms < vocab_size)).all()):
                raise ValueError(f"terms must be a ({vocab_size},) tensor of ids in [0, {vocab_size}) for a TF-IDF "
                                 f"encoder, got shape {tuple(terms.shape)} with weighting={weighting!r}.")
        self.register_buffer("terms", terms, persistent=False)  # (V,) or None
        if not isinstance(bigrams, int) or bigrams < 0 or (bigrams and weighting != "tfidf"):
            raise ValueError(f"bigrams must be an int >= 0 (0 with weighting='mean'), got {bigrams!r} with "
                             f"weighting={weighting!r}.")
        self.bigrams, self.unknown = bigrams, unknown
        if bigrams:
            slots = bigram_table.table_size(bigrams)
            self.bigram_embedding = nn.Embedding(bigrams + 1, embedding_dim, padding_idx=0)
            self.register_buffer("bigram_idf", torch.zeros(bigrams + 1))  # (K + 1,)
            self.register_buffer("bigram_keys", torch.full((slots,), -1, dtype=torch.long))  # (S,)
            self.register_buffer("bigram_rows", torch.zeros(slots, dtype=torch.long))  # (S,)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.mlp = _mlp(in_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        if weighting == "mean":
            self.output_dim, self.projection = hidden_dim, None
        else:
            self.register_buffer("idf", torch.ones(vocab_size))  # (V,)
            self.output_dim, self.projection = hidden_dim + embedding_dim, slice(hidden_dim, hidden_dim + embedding_dim)

    def token_weights(self, input_ids, lengths):
        """(B, T) ids -> (B, T) each position's share of its text's L2-normalised sublinear TF-IDF vector
        (a token that occurs ``c`` times has ``c`` positions that share its weight); 0 on padding. The ids
        are those the encoder counts (its ``terms``); bigrams are left out."""
        valid = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < lengths[:, None]  # (B, T)
        shares, squares = _tfidf_shares(input_ids, valid, self.idf)
        return shares / squares.sqrt().clamp(min=1e-12)

    def bigram_ids(self, terms, lengths):
        """(B, T) terms -> (B, T - 1) the row of ``bigram_embedding`` of each two neighbouring positions
        (0 where they make no bigram the encoder counts)."""
        first, second = terms[:, :-1], terms[:, 1:]  # (B, T - 1) each
        words = (first > 0) & (second > 0) & (first != self.unknown) & (second != self.unknown)
        rows = bigram_table.neighbour_rows(terms, lengths, self.bigram_keys, self.bigram_rows,
                                           self.embedding.num_embeddings)
        return rows * words  # (B, T - 1)

    def forward(self, input_ids, lengths):
        if self.weighting == "mean":
            return self.mlp(masked_mean(self.embedding(input_ids), lengths))  # (B, H)
        if self.terms is not None:
            input_ids = self.terms[input_ids]  # (B, T)
        valid = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < lengths[:, None]  # (B, T)
        shares, squares = _tfidf_shares(input_ids, valid, self.idf)  # (B, T), (B, 1)
        parts = [(shares, self.embedding(input_ids))]
        if self.bigrams:  # a text of one position has none: the tensors below are then empty
            rows = self.bigram_ids(input_ids, lengths)  # (B, T - 1)
            bigram_shares, bigram_squares = _tfidf_shares(rows, rows > 0, self.bigram_idf)
            squares = squares + bigram_squares
            parts.append((bigram_shares, self.bigram_embedding(rows)))
        norms = squares.sqrt().clamp(min=1e-12)  # (B, 1)
        dtype = self.embedding.weight.dtype
        projection = sum(((weights / norms).to(dtype)[..., None] * vectors).sum(dim=1) for weights, vectors in parts)  # (B, C)
        return torch.cat([self.mlp(projection), projection], dim=-1)  # (B, H + C)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        if bigram_table.check_rows(state_dict, prefix, self.bigrams, args[-1]):  # rows read from a file
            super()._load_from_state_dict(state_dict, prefix, *args)


def _tfidf_shares(ids, valid, idf):
    """(B, N) ids and validity -> each position's share of its id's sublinear TF-IDF weight in the text
    ((B, N), 0 where not valid) and the sum over the text of its distinct ids' weights squared ((B, 1))."""
    valid = valid.to(torch.float32)
    counts = torch.zeros(ids.shape[0], idf.shape[0], device=ids.device)  # (B, V)
    counts = counts.scatter_add(1, ids, valid).gather(1, ids).clamp(min=1.0)  # (B, N)
    tfidf = (1.0 + torch.log(counts)) * idf[ids]  # (B, N): the weight of each position's id
    shares = valid * tfidf / counts  # (B, N)
    # Summed over positions, shares * tfidf is each distinct id's weight squared, once.
    return shares, (shares * tfidf).sum(dim=1, keepdim=True)


class BagDecoder(nn.Module):
    """(B, L) latent -> (B, V) logits of the bag's tokens.

    With ``embedding_dim``, the last layer is a token embedding matrix (``self.embedding``, tied to
    the logits layer) that can start from a pretrained model's; without, a plain linear layer.
    """

    is_sequence = False

    def __init__(self, *, vocab_size, latent_dim, hidden_dim, num_layers, dropout, embedding_dim=None):
        super().__init__()
        self.mlp = _mlp(in_dim=latent_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        if embedding_dim is None:
            self.embedding, self.project = None, nn.Identity()
            self.output = nn.Linear(hidden_dim, vocab_size)
        else:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            self.project = nn.Linear(hidden_dim, embedding_dim)
            self.output = output_layer(in_dim=embedding_dim, vocab_size=vocab_size, tied_embedding=self.embedding)

    def forward(self, latent, decoder_input_ids=None):
        return self.output(self.project(self.mlp(latent)))  # (B, V)
