"""Bag of words: an MLP encoder over the mean token embedding, and a decoder that predicts the text's
bag of tokens (one distribution over the vocabulary, word order ignored)."""

from torch import nn

from .base import masked_mean, output_layer


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
