"""PyTorch modules: one file per architecture family. Imports only torch."""

from .bow import BagOfWordsAutoencoder
from .recurrent import RecurrentAutoencoder
from .transformer import TransformerAutoencoder

ARCHITECTURES = ("transformer", "gru", "lstm", "bow")


def build_module(architecture, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, num_heads,
                 dropout, max_length, variational=False):
    """Build the autoencoder module for ``architecture`` (one of ``ARCHITECTURES``)."""
    sizes = dict(vocab_size=vocab_size, latent_dim=latent_dim, embedding_dim=embedding_dim,
                 hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout, variational=variational)
    if architecture == "transformer":
        # Encoder input is the text plus EOS; decoder input is BOS plus the text: max_length + 1 each.
        return TransformerAutoencoder(**sizes, num_heads=num_heads, max_positions=max_length + 1)
    if architecture in ("gru", "lstm"):
        return RecurrentAutoencoder(**sizes, cell=architecture)
    if architecture == "bow":
        return BagOfWordsAutoencoder(**sizes)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}.")
