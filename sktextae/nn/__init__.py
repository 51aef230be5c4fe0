"""PyTorch modules: encoders, bottlenecks and decoders, one file per family; any encoder pairs with any
decoder (see ``base``). Imports only torch."""

import torch
from torch import nn

from .base import Autoencoder
from .bottleneck import BOTTLENECKS, make_bottleneck
from .bow import BagDecoder, BagOfWordsEncoder
from .conv import ConvEncoder
from .pretrained import PretrainedEncoder
from .pretrained_decoder import PretrainedDecoder
from .recurrent import RecurrentDecoder, RecurrentEncoder
from .static import StaticEncoder
from .transformer import TransformerDecoder, TransformerEncoder

ENCODERS = ("transformer", "gru", "lstm", "conv", "bow")
# The decoders built from numbers alone (``build_decoder``), and "pretrained": a Transformer decoder whose
# layers start from the pretrained encoder's checkpoint, which the caller builds from that model
# (``PretrainedDecoder``) and passes to ``build_autoencoder`` as a module.
SCRATCH_DECODERS = ("transformer", "gru", "lstm", "bag")
DECODERS = (*SCRATCH_DECODERS, "pretrained")
# The shorthand for the matching pairs: architecture -> (encoder, decoder).
ARCHITECTURES = {"transformer": ("transformer", "transformer"), "gru": ("gru", "gru"), "lstm": ("lstm", "lstm"),
                 "bow": ("bow", "bag")}


def build_encoder(name, *, vocab_size, embedding_dim, hidden_dim, num_layers, num_heads, dropout, max_length,
                  bow_weighting="tfidf", bow_terms=None, bow_bigrams=0):
    """A from-scratch encoder by name (one of ``ENCODERS``); ``bow_weighting``, ``bow_terms`` and ``bow_bigrams``
    are the bag of words' ``weighting``, ``terms`` and ``bigrams``."""
    sizes = dict(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers,
                 dropout=dropout)
    if name == "transformer":
        # The encoder reads the text plus EOS: max_length + 1 positions.
        return TransformerEncoder(**sizes, num_heads=num_heads, max_positions=max_length + 1)
    if name in ("gru", "lstm"):
        return RecurrentEncoder(**sizes, cell=name)
    if name == "conv":
        return ConvEncoder(**sizes)
    if name == "bow":
        return BagOfWordsEncoder(**sizes, weighting=bow_weighting, terms=bow_terms, bigrams=bow_bigrams)
    raise ValueError(f"encoder must be one of {ENCODERS}, got {name!r}.")


def build_decoder(name, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, num_heads, dropout,
                  max_length, tie_embeddings=False):
    """A decoder by name (one of ``DECODERS``); ``tie_embeddings`` shares its token embedding matrix with its
    logits layer."""
    sizes = dict(vocab_size=vocab_size, latent_dim=latent_dim, hidden_dim=hidden_dim, num_layers=num_layers,
                 dropout=dropout)
    if name == "transformer":
        # The decoder reads BOS plus the text: max_length + 1 positions.
        return TransformerDecoder(**sizes, embedding_dim=embedding_dim, num_heads=num_heads,
                                  max_positions=max_length + 1, tie_embeddings=tie_embeddings)
    if name in ("gru", "lstm"):
        return RecurrentDecoder(**sizes, embedding_dim=embedding_dim, cell=name, tie_embeddings=tie_embeddings)
    if name == "bag":
        return BagDecoder(**sizes, embedding_dim=embedding_dim if tie_embeddings else None)
    if name == "pretrained":
        raise ValueError("decoder='pretrained' starts from a pretrained model's checkpoint, which a name alone does "
                         "not give: build a PretrainedDecoder from the model and pass it as decoder=.")
    raise ValueError(f"decoder must be one of {DECODERS}, got {name!r}.")


def build_autoencoder(*, encoder, decoder, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, num_heads,
                      dropout, max_length, variational=False, decoder_vocab_size=None, decoder_embeddings=None,
                      bow_weighting="tfidf", bow_terms=None, bow_bigrams=0):
    """An ``Autoencoder`` of the named encoder and decoder.

    ``encoder`` is a name of ``ENCODERS`` or an encoder module (a ``PretrainedEncoder`` or
    ``StaticEncoder``); ``decoder`` a
    name of ``DECODERS`` or a decoder module (a ``PretrainedDecoder``). A from-scratch
    encoder and decoder whose token embeddings have the same shape share them. ``decoder_vocab_size``
    (default ``vocab_size``) is the decoder's own vocabulary; ``decoder_embeddings``, a (decoder
    vocabulary, embedding_dim) tensor, starts the decoder's token embeddings, tied to its logits layer.
    ``bow_weighting``, ``bow_terms`` and ``bow_bigrams`` are a bag-of-words encoder's ``weighting``, ``terms``
    and ``bigrams``.
    """
    sizes = dict(embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
                 dropout=dropout, max_length=max_length)
    if isinstance(encoder, nn.Module):
        encoder_module = encoder
    else:
        encoder_module = build_encoder(encoder, vocab_size=vocab_size, bow_weighting=bow_weighting,
                                       bow_terms=bow_terms, bow_bigrams=bow_bigrams, **sizes)
    tie = decoder_embeddings is not None
    if isinstance(decoder, nn.Module):
        decoder_module = decoder
    else:
        decoder_module = build_decoder(decoder, vocab_size=decoder_vocab_size or vocab_size, latent_dim=latent_dim,
                                       tie_embeddings=tie, **sizes)
    if tie:
        with torch.no_grad():
            decoder_module.embedding.weight.copy_(decoder_embeddings)
    else:
        _share_embedding(encoder_module, decoder_module)
    bottleneck = make_bottleneck("gaussian" if variational else "deterministic", hidden_dim=encoder_module.output_dim,
                                 latent_dim=latent_dim)
    return Autoencoder(encoder=encoder_module, bottleneck=bottleneck, decoder=decoder_module)


def build_module(architecture, **sizes):
    """``build_autoencoder`` for a matching pair named by ``architecture`` (a key of ``ARCHITECTURES``)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {tuple(ARCHITECTURES)}, got {architecture!r}.")
    encoder, decoder = ARCHITECTURES[architecture]
    return build_autoencoder(encoder=encoder, decoder=decoder, **sizes)


def _share_embedding(encoder, decoder):
    # One token table for both sides when they can share it: half the embedding weights, and the decoder's
    # input tokens get the encoder's gradient too.
    mine, theirs = getattr(encoder, "embedding", None), getattr(decoder, "embedding", None)
    if mine is None or theirs is None or type(mine) is not type(theirs):
        return
    if all(a.shape == b.shape for a, b in zip(mine.state_dict().values(), theirs.state_dict().values())):
        decoder.embedding = mine


__all__ = ["ARCHITECTURES", "BOTTLENECKS", "DECODERS", "ENCODERS", "SCRATCH_DECODERS", "Autoencoder",
           "PretrainedDecoder", "PretrainedEncoder", "StaticEncoder", "build_autoencoder", "build_decoder", "build_encoder", "build_module",
           "make_bottleneck"]
