"""Bag of words: an MLP encoder over the mean token embedding, and a decoder that predicts the text's
bag of tokens (one distribution over the vocabulary, word order ignored)."""

import torch
from torch import nn

from .base import masked_mean, output_layer

# How far apart start_from_lsa puts the training texts: the standard deviation across them of each unit
# of their mean token embedding (averaged over units), the scale of input the MLP's first layer is
# initialised for.
LSA_START_STD = 1.0


def _mlp(*, in_dim, hidden_dim, num_layers, dropout):
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class BagOfWordsEncoder(nn.Module):
    """(B, T) ids -> (B, hidden_dim). A mean of embeddings is a linear map of the normalised token
    counts: the classic bag-of-words input."""

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout):
        super().__init__()
        self.output_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.mlp = _mlp(in_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)

    def forward(self, input_ids, lengths):
        return self.mlp(masked_mean(self.embedding(input_ids), lengths))  # (B, H)


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
def start_from_lsa(encoder, sequences):
    """Start a ``BagOfWordsEncoder``'s token embeddings from LSA of its training texts.

    LSA here is the truncated SVD of the texts' sublinear TF-IDF vectors (L2-normalised rows, smooth IDF,
    as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``) over the encoder's own tokens. Each token's
    embedding becomes its loadings on the first ``embedding_dim`` right singular vectors times its IDF:
    the encoder's mean of a text's token embeddings is then the projection of the text's IDF-weighted
    token counts on the LSA components, divided by its length, where a random start is nearly the same
    vector for every text (from which a small model, trained with early stopping, may never leave).
    Tokens that no text holds, and padding, start at 0; the whole table is scaled so that the mean
    embeddings of the texts spread by ``LSA_START_STD`` per unit.

    Parameters
    ----------
    encoder : BagOfWordsEncoder
        Its ``embedding`` is overwritten.
    sequences : sequence of 1-D int arrays, lists or tensors
        The training texts' token ids (as the encoder's vocabulary numbers them; no padding).

    Notes
    -----
    The SVD is randomized (``torch.svd_lowrank``): it draws from torch's global generator, so a
    seeded caller gets the same start each time. With fewer texts than ``embedding_dim``, only as many
    columns as texts are filled; the others start at 0.
    """
    weight = encoder.embedding.weight  # (V, C)
    vocab_size, width = weight.shape
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)  # (N,)
    n_texts, rank = len(lengths), min(width, len(lengths), vocab_size)
    if rank < 1 or int(lengths.sum()) == 0:
        return  # nothing to start from: the random start stays
    ids = torch.cat([torch.as_tensor(sequence, dtype=torch.long).reshape(-1) for sequence in sequences])  # (T,)
    texts = torch.repeat_interleave(torch.arange(n_texts), lengths)  # (T,): the text each token is in
    # Checked: an id outside the vocabulary raises here rather than reading out of bounds.
    counts = torch.sparse_coo_tensor(torch.stack([texts, ids]), torch.ones(len(ids)), (n_texts, vocab_size),
                                     device="cpu", check_invariants=True).coalesce()  # (N, V)
    (rows, columns), count = counts.indices(), counts.values()
    documents = torch.bincount(columns, minlength=vocab_size).to(torch.float32)  # (V,): texts holding each token
    idf = torch.log((1.0 + n_texts) / (1.0 + documents)) + 1.0  # (V,)
    values = (1.0 + torch.log(count)) * idf[columns]
    norms = torch.zeros(n_texts).index_add_(0, rows, values.square()).sqrt()  # (N,)
    tfidf = torch.sparse_coo_tensor(counts.indices(), values / norms[rows], counts.shape,
                                    check_invariants=False)  # (N, V): the indices just checked
    # A few more columns than kept, and power iterations, as scikit-learn's randomized TruncatedSVD does.
    _, _, right = torch.svd_lowrank(tfidf, q=min(rank + 10, n_texts, vocab_size), niter=5)  # (V, q)
    table = torch.zeros(vocab_size, width)
    table[:, :rank] = right[:, :rank] * idf[:, None]  # (V, rank): zero rows for tokens no text holds
    if encoder.embedding.padding_idx is not None:
        table[encoder.embedding.padding_idx] = 0.0
    mean_embeddings = torch.sparse.mm(counts, table) / lengths.clamp(min=1)[:, None]  # (N, C)
    spread = float(mean_embeddings.std(dim=0, correction=0).mean())
    weight.copy_((table * (LSA_START_STD / spread if spread > 0 else 1.0)).to(weight))
