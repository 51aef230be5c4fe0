"""The shape every autoencoder module shares: encoder -> bottleneck -> decoder.

Interface of every module in this package (what the estimator and the decoders rely on)::

    encode(input_ids, lengths) -> latent                      # (B, latent_dim), deterministic
    forward(input_ids, lengths, decoder_input_ids) -> (logits, aux_loss | None)
    decode(latent, decoder_input_ids) -> logits               # (B, T, V) or, for a bag, (B, V)
    init_state(latent) -> state; step(tokens, state) -> (logits (B, V), state)   # sequence decoders

``input_ids`` is (B, T) padded with ``PAD_ID`` and ``lengths`` (B,) counts the real tokens of each
row. The bottleneck is a plug-in: it turns the encoder's pooled hidden vector into the latent vector
and may add a loss term (a variational bottleneck adds its KL divergence).
"""

import torch
from torch import nn


class DeterministicBottleneck(nn.Module):
    """A linear projection from the encoder's hidden vector to the latent vector."""

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__()
        self.project = nn.Linear(hidden_dim, latent_dim)

    # forward returns (latent, aux_loss | None)
    def forward(self, hidden):
        return self.project(hidden), None

    def mean(self, hidden):
        return self.project(hidden)


class AutoencoderModule(nn.Module):
    """Base of the architecture families; subclasses define ``encode_hidden`` and ``decode``.

    Subclasses set ``self.bottleneck`` and ``self.latent_dim``; ``is_sequence_decoder`` says whether
    ``decode`` reads a target prefix (teacher forcing) or predicts a bag of tokens.
    """

    is_sequence_decoder = True

    def encode_hidden(self, input_ids, lengths):
        raise NotImplementedError

    def decode(self, latent, decoder_input_ids):
        raise NotImplementedError

    def encode(self, input_ids, lengths):
        return self.bottleneck.mean(self.encode_hidden(input_ids, lengths))

    def forward(self, input_ids, lengths, decoder_input_ids=None):
        latent, aux_loss = self.bottleneck(self.encode_hidden(input_ids, lengths))
        return self.decode(latent, decoder_input_ids), aux_loss


def padding_mask(lengths, max_len):
    """True where a position is padding: (B,) lengths -> (B, max_len) bool."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] >= lengths[:, None]  # (B, T)


def masked_mean(hidden, lengths):
    """Mean over each row's real positions: (B, T, C) -> (B, C)."""
    keep = ~padding_mask(lengths, hidden.shape[1])  # (B, T)
    total = (hidden * keep[..., None].to(hidden.dtype)).sum(dim=1)  # (B, C)
    return total / lengths.clamp(min=1)[:, None].to(hidden.dtype)
