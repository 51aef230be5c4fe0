"""An autoencoder with a supervised head on its latent vector (classification or regression)."""

from torch import nn


class SupervisedAutoencoder(nn.Module):
    """Wraps any autoencoder module of this package; keeps its interface and adds a head.

    ``forward`` returns ``(logits, kl | None, head_outputs)`` with head_outputs (B, n_outputs),
    computed from the same latent vector the decoder reads (the posterior draw when variational).
    """

    def __init__(self, *, autoencoder, n_outputs, dropout):
        super().__init__()
        self.autoencoder = autoencoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(autoencoder.latent_dim, n_outputs))

    @property
    def latent_dim(self):
        return self.autoencoder.latent_dim

    @property
    def is_sequence_decoder(self):
        return self.autoencoder.is_sequence_decoder

    def forward(self, input_ids, lengths, decoder_input_ids=None):
        latent, kl = self.autoencoder.bottleneck(self.autoencoder.encode_hidden(input_ids, lengths))
        return self.autoencoder.decode(latent, decoder_input_ids), kl, self.head(latent)

    def predict(self, input_ids, lengths):
        return self.head(self.encode(input_ids, lengths))  # (B, n_outputs), from the posterior mean

    # The rest of the autoencoder interface, unchanged.
    def encode(self, input_ids, lengths):
        return self.autoencoder.encode(input_ids, lengths)

    def decode(self, latent, decoder_input_ids=None):
        return self.autoencoder.decode(latent, decoder_input_ids)

    def init_state(self, latent):
        return self.autoencoder.init_state(latent)

    def step(self, tokens, state):
        return self.autoencoder.step(tokens, state)

    def reorder_state(self, state, index):
        return self.autoencoder.reorder_state(state, index)
