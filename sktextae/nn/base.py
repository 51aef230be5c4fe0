"""The shape every autoencoder of this package shares: encoder -> bottleneck -> decoder, as plug-ins.

Interfaces (what ``Autoencoder``, the estimator and the decoding loops rely on)::

    # encoder:    forward(input_ids, lengths) -> hidden (B, output_dim); attribute output_dim
    # bottleneck: forward(hidden) -> (latent, kl | None); mean(hidden) -> latent; attribute variational
    # decoder:    forward(latent, decoder_input_ids) -> logits (B, T, V), or (B, V) for a bag
    #             attribute is_sequence; a sequence decoder also has
    #             init_state(latent) -> state; step(tokens, state) -> (logits (B, V), state)
    #             reorder_state(state, index) -> state   # rows picked by a (B',) index: beams in beam search

``input_ids`` is (B, T) padded with ``PAD_ID`` and ``lengths`` (B,) counts the real tokens of each
row. ``kl`` is the KL divergence of each latent unit, (B, latent_dim), which the training loop weighs
(annealing, free bits) into the loss. Any encoder pairs with any decoder: the bottleneck maps the
encoder's ``output_dim`` to ``latent_dim``, the only width a decoder reads.
"""

import torch
from torch import nn


class Autoencoder(nn.Module):
    """An encoder, a bottleneck and a decoder, each a plug-in module of the interfaces above.

    ``forward`` also takes ``encoder_hidden``, the encoder's output computed beforehand (a frozen
    encoder's, cached once per fit): the encoder is then not run at all.
    """

    def __init__(self, *, encoder, bottleneck, decoder):
        super().__init__()
        self.encoder, self.bottleneck, self.decoder = encoder, bottleneck, decoder

    @property
    def latent_dim(self):
        return self.bottleneck.latent_dim

    @property
    def is_sequence_decoder(self):
        return self.decoder.is_sequence

    def encode_hidden(self, input_ids, lengths):
        return self.encoder(input_ids, lengths)  # (B, H)

    def encode(self, input_ids=None, lengths=None, encoder_hidden=None):
        hidden = self.encoder(input_ids, lengths) if encoder_hidden is None else encoder_hidden
        return self.bottleneck.mean(hidden)  # (B, L)

    def sample_latent(self, input_ids=None, lengths=None, encoder_hidden=None):
        """The training-time latent (a posterior draw when variational) and the per-unit KL."""
        hidden = self.encoder(input_ids, lengths) if encoder_hidden is None else encoder_hidden
        return self.bottleneck(hidden)  # (B, L), (B, L) | None

    def forward(self, input_ids=None, lengths=None, decoder_input_ids=None, encoder_hidden=None):
        latent, kl = self.sample_latent(input_ids, lengths, encoder_hidden)
        return self.decoder(latent, decoder_input_ids), kl

    def decode(self, latent, decoder_input_ids=None):
        return self.decoder(latent, decoder_input_ids)

    def init_state(self, latent):
        return self.decoder.init_state(latent)

    def step(self, tokens, state):
        return self.decoder.step(tokens, state)

    def reorder_state(self, state, index):
        return self.decoder.reorder_state(state, index)


def padding_mask(lengths, max_len):
    """True where a position is padding: (B,) lengths -> (B, max_len) bool."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] >= lengths[:, None]  # (B, T)


def masked_mean(hidden, lengths):
    """Mean over each row's real positions: (B, T, C) -> (B, C)."""
    keep = ~padding_mask(lengths, hidden.shape[1])  # (B, T)
    total = (hidden * keep[..., None].to(hidden.dtype)).sum(dim=1)  # (B, C)
    return total / lengths.clamp(min=1)[:, None].to(hidden.dtype)


def masked_max(hidden, lengths):
    """Max over each row's real positions: (B, T, C) -> (B, C); a row of no real position gives 0."""
    pad = padding_mask(lengths, hidden.shape[1])[..., None]  # (B, T, 1)
    pooled = hidden.masked_fill(pad, torch.finfo(hidden.dtype).min).amax(dim=1)  # (B, C)
    return pooled.masked_fill((lengths == 0)[:, None], 0.0)


def output_layer(*, in_dim, vocab_size, tied_embedding=None):
    """The decoder's logits layer; with ``tied_embedding`` (an nn.Embedding of width ``in_dim``), its
    weight is the embedding's own: the output and input token vectors are one matrix."""
    output = nn.Linear(in_dim, vocab_size)
    if tied_embedding is not None:
        output.weight = tied_embedding.weight  # (V, in_dim)
    return output


class PrefixDecoding:
    """The decoding interface of a decoder that reads the latent vector as memory slots and reruns its
    prefix at every step (the Transformer decoders): the subclass defines ``_memory(latent)`` ->
    (B, M, C) and ``_decode_memory(memory, decoder_input_ids)`` -> (B, T, V) logits.

    The decoding state is the memory and the prefix so far; rerunning the prefix at each step is cheap
    at the lengths an autoencoder decodes, and keeps the decoders free of cache logic.
    """

    def forward(self, latent, decoder_input_ids):
        return self._decode_memory(self._memory(latent), decoder_input_ids)

    def init_state(self, latent):
        return self._memory(latent), latent.new_zeros((latent.shape[0], 0), dtype=torch.long)

    def step(self, tokens, state):
        memory, prefix = state
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)  # (B, t)
        return self._decode_memory(memory, prefix)[:, -1], (memory, prefix)  # (B, V)

    def reorder_state(self, state, index):
        """Row ``i`` of the new state is row ``index[i]`` of ``state``: selects, reorders or repeats rows."""
        memory, prefix = state
        return memory.index_select(0, index), prefix.index_select(0, index)  # (B', M, C), (B', t)
