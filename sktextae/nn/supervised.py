"""An autoencoder with a supervised head on its latent vector (classification or regression)."""

from torch import nn


class SupervisedAutoencoder(nn.Module):
    """Wraps an ``Autoencoder``; keeps its interface and adds a head.

    ``forward`` returns ``(logits, kl | None, head_outputs)`` with head_outputs (B, n_outputs),
    computed from the same latent vector the decoder reads (the posterior draw when variational).
    """

    def __init__(self, *, autoencoder, n_outputs, dropout):
        super().__init__()
        self.autoencoder = autoencoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(autoencoder.latent_dim, n_outputs))

    def __getattr__(self, name):
        # The rest of the autoencoder's interface (encode, decode, step, encoder, bottleneck, ...), unchanged.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("autoencoder"), name)

    def forward(self, input_ids=None, lengths=None, decoder_input_ids=None, encoder_hidden=None):
        latent, kl = self.autoencoder.sample_latent(input_ids, lengths, encoder_hidden)
        return self.autoencoder.decode(latent, decoder_input_ids), kl, self.head(latent)

    def predict(self, input_ids=None, lengths=None, encoder_hidden=None):
        return self.head(self.autoencoder.encode(input_ids, lengths, encoder_hidden))  # (B, n_outputs), posterior mean
