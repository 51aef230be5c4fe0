"""Bag of words: an encoder of the text's TF-IDF-weighted tokens (LSA's input, which it can start from),
and a decoder that predicts the text's bag of tokens (one distribution over the vocabulary, word order
ignored)."""

import torch
from torch import nn

from .base import masked_mean, output_layer

# How far apart start_from_lsa puts the training texts: the standard deviation across them of each unit
# of their projection (averaged over units), the scale of input the MLP's first layer is initialised for.
LSA_START_STD = 1.0
# How the encoder weighs a text's tokens: "tfidf", or "mean" (the mean of their embeddings, which models
# saved by sktextae before the TF-IDF encoder hold).
WEIGHTINGS = ("tfidf", "mean")


def _mlp(*, in_dim, hidden_dim, num_layers, dropout):
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class BagOfWordsEncoder(nn.Module):
    """(B, T) ids -> (B, output_dim): a text as a weighted sum of its token embeddings, and an MLP of it.

    ``weighting="tfidf"``: each token weighs its sublinear TF-IDF (``1 + log(count)`` times its IDF, the
    ``idf`` buffer that ``start_from_lsa`` fills; a token of IDF 0 is ignored), L2-normalised over the
    text, as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` weighs it. The weighted sum of the
    embeddings (the *projection*) is then LSA's projection when the table holds LSA's components. The
    output is the MLP's output beside the projection (``output_dim = hidden_dim + embedding_dim``;
    ``projection`` is the slice of its columns), so that a layer reading it can start from the
    projection alone and training adds what the MLP finds.

    ``weighting="mean"``: the MLP of the mean of the token embeddings (``output_dim = hidden_dim``), the
    encoder of models saved by earlier versions.
    """

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout, weighting="tfidf"):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self.weighting = weighting
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.mlp = _mlp(in_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        if weighting == "mean":
            self.output_dim, self.projection = hidden_dim, None
        else:
            self.register_buffer("idf", torch.ones(vocab_size))  # (V,)
            self.output_dim, self.projection = hidden_dim + embedding_dim, slice(hidden_dim, hidden_dim + embedding_dim)

    def token_weights(self, input_ids, lengths):
        """(B, T) ids -> (B, T) each position's share of its text's L2-normalised sublinear TF-IDF vector
        (a token that occurs ``c`` times has ``c`` positions that share its weight); 0 on padding."""
        batch, length = input_ids.shape
        valid = (torch.arange(length, device=input_ids.device)[None, :] < lengths[:, None]).to(torch.float32)
        counts = torch.zeros(batch, self.idf.shape[0], device=input_ids.device)  # (B, V)
        counts = counts.scatter_add(1, input_ids, valid).gather(1, input_ids).clamp(min=1.0)  # (B, T)
        tfidf = (1.0 + torch.log(counts)) * self.idf[input_ids]  # (B, T): the weight of each position's token
        shares = valid * tfidf / counts  # (B, T)
        # Summed over positions, shares * tfidf is each distinct token's weight squared, once.
        norms = (shares * tfidf).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)  # (B, 1)
        return shares / norms

    def forward(self, input_ids, lengths):
        if self.weighting == "mean":
            return self.mlp(masked_mean(self.embedding(input_ids), lengths))  # (B, H)
        weights = self.token_weights(input_ids, lengths).to(self.embedding.weight.dtype)  # (B, T)
        projection = (weights[..., None] * self.embedding(input_ids)).sum(dim=1)  # (B, C)
        return torch.cat([self.mlp(projection), projection], dim=-1)  # (B, H + C)


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


@torch.no_grad()
def start_from_lsa(encoder, sequences, *, ignored=()):
    """Start a TF-IDF ``BagOfWordsEncoder`` from LSA of its training texts: its projection becomes LSA's.

    LSA here is the truncated SVD of the texts' sublinear TF-IDF vectors (L2-normalised rows, smooth IDF,
    as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``) over the encoder's own tokens. The encoder's
    ``idf`` becomes those IDFs (0 for the ``ignored`` ids, which the encoder then skips, as
    ``TfidfVectorizer`` skips what is not in its vocabulary), and each token's embedding its loadings on
    the first ``embedding_dim`` right singular vectors: the encoder's projection of a text is then its
    LSA vector, where a random start is nearly the same vector for every text (from which a small model,
    trained with early stopping, may never leave). Tokens that no text holds, and padding, start at 0;
    the whole table is scaled so that the projections of the texts spread by ``LSA_START_STD`` per unit.

    Parameters
    ----------
    encoder : BagOfWordsEncoder
        Of ``weighting="tfidf"``; its ``embedding`` and ``idf`` are overwritten.
    sequences : sequence of 1-D int arrays, lists or tensors
        The training texts' token ids (as the encoder's vocabulary numbers them; no padding).
    ignored : sequence of int
        Token ids that weigh nothing (the special tokens: the encoder reads an EOS after every text).

    Notes
    -----
    The SVD is randomized (``torch.svd_lowrank``): it draws from torch's global generator, so a
    seeded caller gets the same start each time. With fewer texts than ``embedding_dim``, only as many
    columns as texts are filled; the others start at 0.
    """
    if encoder.weighting != "tfidf":
        raise ValueError(f"start_from_lsa starts a TF-IDF encoder, got weighting={encoder.weighting!r}.")
    weight = encoder.embedding.weight  # (V, C)
    vocab_size, width = weight.shape
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)  # (N,)
    n_texts = len(lengths)
    if n_texts == 0 or int(lengths.sum()) == 0:
        return  # nothing to start from: the random start stays
    ids = torch.cat([torch.as_tensor(sequence, dtype=torch.long).reshape(-1) for sequence in sequences])  # (T,)
    texts = torch.repeat_interleave(torch.arange(n_texts), lengths)  # (T,): the text each token is in
    # Checked: an id outside the vocabulary raises here rather than reading out of bounds.
    counts = torch.sparse_coo_tensor(torch.stack([texts, ids]), torch.ones(len(ids)), (n_texts, vocab_size),
                                     device="cpu", check_invariants=True).coalesce()  # (N, V)
    (rows, columns), count = counts.indices(), counts.values()
    documents = torch.bincount(columns, minlength=vocab_size).to(torch.float32)  # (V,): texts holding each token
    idf = torch.log((1.0 + n_texts) / (1.0 + documents)) + 1.0  # (V,)
    idf[torch.as_tensor(list(ignored), dtype=torch.long)] = 0.0
    if encoder.embedding.padding_idx is not None:
        idf[encoder.embedding.padding_idx] = 0.0
    values = (1.0 + torch.log(count)) * idf[columns]
    encoder.idf.copy_(idf)
    if not bool((values > 0).any()):
        return  # the texts hold only ignored tokens: the random embeddings stay
    norms = torch.zeros(n_texts).index_add_(0, rows, values.square()).sqrt().clamp(min=1e-12)  # (N,)
    tfidf = torch.sparse_coo_tensor(counts.indices(), values / norms[rows], counts.shape,
                                    check_invariants=False)  # (N, V): the indices just checked
    rank = min(width, n_texts, vocab_size)
    # A few more columns than kept, and power iterations, as scikit-learn's randomized TruncatedSVD does.
    _, _, right = torch.svd_lowrank(tfidf, q=min(rank + 10, n_texts, vocab_size), niter=5)  # (V, q)
    table = torch.zeros(vocab_size, width)
    table[:, :rank] = right[:, :rank] * (idf > 0)[:, None]  # (V, rank): zero rows for tokens no text holds
    projections = torch.sparse.mm(tfidf, table)  # (N, C)
    spread = float(projections.std(dim=0, correction=0).mean())
    weight.copy_((table * (LSA_START_STD / spread if spread > 0 else 1.0)).to(weight))
