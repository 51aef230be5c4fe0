"""Transformer autoencoder: a self-attention encoder mean-pooled to the latent vector, and a causal
Transformer decoder whose only view of the text is the latent vector (its cross-attention memory)."""

import torch
from torch import nn

from .base import AutoencoderModule, make_bottleneck, masked_mean, padding_mask


class TokenEmbedding(nn.Module):
    """Token plus learned position embedding: (B, T) ids -> (B, T, D)."""

    def __init__(self, *, vocab_size, embedding_dim, max_positions, dropout):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.positions = nn.Embedding(max_positions, embedding_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.dropout(self.tokens(ids) + self.positions(positions)[None])  # (B, T, D)


class TransformerAutoencoder(AutoencoderModule):
    def __init__(self, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, num_heads, dropout,
                 max_positions, variational=False, memory_slots=4):
        super().__init__()
        self.latent_dim, self.embedding_dim, self.memory_slots = latent_dim, embedding_dim, memory_slots
        self.embed = TokenEmbedding(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                    max_positions=max_positions, dropout=dropout)
        layer = dict(d_model=embedding_dim, nhead=num_heads, dim_feedforward=hidden_dim, dropout=dropout,
                     activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), num_layers,
                                             norm=nn.LayerNorm(embedding_dim), enable_nested_tensor=False)
        self.bottleneck = make_bottleneck(hidden_dim=embedding_dim, latent_dim=latent_dim, variational=variational)
        # A few memory slots give cross-attention something to choose between; one slot would
        # reduce it to adding the same vector at every position.
        self.latent_to_memory = nn.Linear(latent_dim, memory_slots * embedding_dim)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), num_layers,
                                             norm=nn.LayerNorm(embedding_dim))
        self.output = nn.Linear(embedding_dim, vocab_size)

    def encode_hidden(self, input_ids, lengths):
        mask = padding_mask(lengths, input_ids.shape[1])  # (B, T)
        hidden = self.encoder(self.embed(input_ids), src_key_padding_mask=mask)  # (B, T, D)
        return masked_mean(hidden, lengths)  # (B, D)

    def _memory(self, latent):
        return self.latent_to_memory(latent).view(latent.shape[0], self.memory_slots, self.embedding_dim)  # (B, M, D)

    def _decode_memory(self, memory, decoder_input_ids):
        length = decoder_input_ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=memory.device)
        # Padding sits after each row's text, so the causal mask already keeps it out of view.
        hidden = self.decoder(self.embed(decoder_input_ids), memory, tgt_mask=causal, tgt_is_causal=True)
        return self.output(hidden)  # (B, T, V)

    def decode(self, latent, decoder_input_ids):
        return self._decode_memory(self._memory(latent), decoder_input_ids)

    # The decoding state is the memory and the prefix so far; each step reruns the prefix, which is
    # cheap at the lengths an autoencoder decodes and keeps this module free of cache logic.
    def init_state(self, latent):
        return self._memory(latent), latent.new_zeros((latent.shape[0], 0), dtype=torch.long)

    def step(self, tokens, state):
        memory, prefix = state
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)  # (B, t)
        return self._decode_memory(memory, prefix)[:, -1], (memory, prefix)

    def reorder_state(self, state, index):
        """Row ``i`` of the new state is row ``index[i]`` of ``state``: selects, reorders or repeats rows."""
        memory, prefix = state
        return memory.index_select(0, index), prefix.index_select(0, index)  # (B', M, D), (B', t)
