"""Bottlenecks: the encoder's hidden vector -> the latent vector, deterministic or variational.

``forward(hidden)`` returns ``(latent, kl | None)``; ``mean(hidden)`` is the latent used at inference.
"""

import torch
from torch import nn

BOTTLENECKS = ("deterministic", "gaussian")


class DeterministicBottleneck(nn.Module):
    """A linear projection from the encoder's hidden vector to the latent vector."""

    variational = False

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.project = nn.Linear(hidden_dim, latent_dim)

    def forward(self, hidden):
        return self.project(hidden), None

    def mean(self, hidden):
        return self.project(hidden)

    @property
    def mean_layer(self):
        return self.project  # the linear map to the latent (mean), which start_from() sets


class GaussianBottleneck(nn.Module):
    """A diagonal Gaussian posterior q(z|x) against a standard normal prior (Bowman et al. 2016).

    In training mode the latent is drawn with the reparameterisation trick; ``mean`` (used by
    ``transform``) is the posterior mean.
    """

    variational = True

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.to_mean = nn.Linear(hidden_dim, latent_dim)
        self.to_log_var = nn.Linear(hidden_dim, latent_dim)

    def forward(self, hidden):
        mean, log_var = self.to_mean(hidden), self.to_log_var(hidden)  # (B, L) each
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var) if self.training else mean
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)  # (B, L): KL(q || N(0, I)) per unit
        return latent, kl

    def mean(self, hidden):
        return self.to_mean(hidden)

    @property
    def mean_layer(self):
        return self.to_mean


@torch.no_grad()
def start_from(bottleneck, *, weight, bias):
    """Set the bottleneck's linear map to the latent (its mean): ``latent = hidden @ weight.T + bias``,
    ``weight`` (latent_dim, hidden_dim) and ``bias`` (latent_dim,)."""
    layer = bottleneck.mean_layer
    layer.weight.copy_(weight)
    layer.bias.copy_(bias)


def make_bottleneck(kind, *, hidden_dim, latent_dim):
    """A bottleneck by name (one of ``BOTTLENECKS``), or ``kind`` itself when it is already a module."""
    if isinstance(kind, nn.Module):
        return kind
    if kind == "deterministic":
        return DeterministicBottleneck(hidden_dim=hidden_dim, latent_dim=latent_dim)
    if kind == "gaussian":
        return GaussianBottleneck(hidden_dim=hidden_dim, latent_dim=latent_dim)
    raise ValueError(f"bottleneck must be one of {BOTTLENECKS} or an nn.Module, got {kind!r}.")
