"""Bag-of-words autoencoder: an MLP encoder over the mean token embedding, and a decoder that
predicts the text's bag of tokens (a distribution over the vocabulary, word order ignored)."""

from torch import nn

from .base import AutoencoderModule, make_bottleneck, masked_mean


def _mlp(*, in_dim, hidden_dim, num_layers, dropout):
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class BagOfWordsAutoencoder(AutoencoderModule):
    is_sequence_decoder = False

    def __init__(self, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, dropout,
                 variational=False):
        super().__init__()
        self.latent_dim = latent_dim
        # A mean of embeddings is a linear map of the normalised token counts: the classic BoW input.
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.encoder = _mlp(in_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        self.bottleneck = make_bottleneck(hidden_dim=hidden_dim, latent_dim=latent_dim, variational=variational)
        self.decoder = nn.Sequential(
            _mlp(in_dim=latent_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout),
            nn.Linear(hidden_dim, vocab_size),
        )

    def encode_hidden(self, input_ids, lengths):
        return self.encoder(masked_mean(self.embedding(input_ids), lengths))  # (B, H)

    def decode(self, latent, decoder_input_ids=None):
        return self.decoder(latent)  # (B, V): one distribution over the bag's tokens
