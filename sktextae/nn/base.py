"""The shape every autoencoder module shares: encoder -> bottleneck -> decoder.

Interface of every module in this package (what the estimator and the decoders rely on)::

    encode(input_ids, lengths) -> latent                      # (B, latent_dim), deterministic
    forward(input_ids, lengths, decoder_input_ids) -> (logits, kl | None)   # kl: (B, latent_dim) per unit
    decode(latent, decoder_input_ids) -> logits               # (B, T, V) or, for a bag, (B, V)
    init_state(latent) -> state; step(tokens, state) -> (logits (B, V), state)   # sequence decoders
    reorder_state(state, index) -> state      # rows picked by a (B',) index: beams in beam search

``input_ids`` is (B, T) padded with ``PAD_ID`` and ``lengths`` (B,) counts the real tokens of each
row. The bottleneck is a plug-in chosen by ``make_bottleneck``: it turns the encoder's pooled hidden
vector into the latent vector; a variational one also returns the KL divergence of each latent unit,
which the training loop weighs (annealing, free bits) into the loss.
"""

import torch
from torch import nn


# Bottlenecks: forward(hidden) returns (latent, kl | None); mean(hidden) is the latent used at inference.
class DeterministicBottleneck(nn.Module):
    """A linear projection from the encoder's hidden vector to the latent vector."""

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__()
        self.project = nn.Linear(hidden_dim, latent_dim)

    def forward(self, hidden):
        return self.project(hidden), None

    def mean(self, hidden):
        return self.project(hidden)


class GaussianBottleneck(nn.Module):
    """A diagonal Gaussian posterior q(z|x) against a standard normal prior (Bowman et al. 2016).

    In training mode the latent is drawn with the reparameterisation trick; ``mean`` (used by
    ``transform``) is the posterior mean.
    """

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__()
        self.to_mean = nn.Linear(hidden_dim, latent_dim)
        self.to_log_var = nn.Linear(hidden_dim, latent_dim)

    def forward(self, hidden):
        mean, log_var = self.to_mean(hidden), self.to_log_var(hidden)  # (B, L) each
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var) if self.training else mean
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)  # (B, L): KL(q || N(0, I)) per unit
        return latent, kl

    def mean(self, hidden):
        return self.to_mean(hidden)


def make_bottleneck(*, hidden_dim, latent_dim, variational):
    cls = GaussianBottleneck if variational else DeterministicBottleneck
    return cls(hidden_dim=hidden_dim, latent_dim=latent_dim)


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
        latent, kl = self.bottleneck(self.encode_hidden(input_ids, lengths))
        return self.decode(latent, decoder_input_ids), kl


def padding_mask(lengths, max_len):
    """True where a position is padding: (B,) lengths -> (B, max_len) bool."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] >= lengths[:, None]  # (B, T)


def masked_mean(hidden, lengths):
    """Mean over each row's real positions: (B, T, C) -> (B, C)."""
    keep = ~padding_mask(lengths, hidden.shape[1])  # (B, T)
    total = (hidden * keep[..., None].to(hidden.dtype)).sum(dim=1)  # (B, C)
    return total / lengths.clamp(min=1)[:, None].to(hidden.dtype)
