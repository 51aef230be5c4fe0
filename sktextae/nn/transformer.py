"""Transformer: a self-attention encoder mean-pooled to the text's hidden vector, and a causal
Transformer decoder whose only view of the text is the latent vector (its cross-attention memory)."""

import torch
from torch import nn

from .base import PrefixDecoding, masked_mean, output_layer, padding_mask


class TokenEmbedding(nn.Module):
    """Token plus learned position embedding: (B, T) ids -> (B, T, D)."""

    def __init__(self, *, vocab_size, embedding_dim, max_positions, dropout):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.positions = nn.Embedding(max_positions, embedding_dim)
        self.dropout = nn.Dropout(dropout)

    @property
    def weight(self):
        return self.tokens.weight  # (V, D): what a tied logits layer and a pretrained start share

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.dropout(self.tokens(ids) + self.positions(positions)[None])  # (B, T, D)


def _layer(*, embedding_dim, hidden_dim, num_heads, dropout):
    return dict(d_model=embedding_dim, nhead=num_heads, dim_feedforward=hidden_dim, dropout=dropout,
                activation="gelu", batch_first=True, norm_first=True)


class TransformerEncoder(nn.Module):
    """(B, T) ids -> (B, embedding_dim): self-attention layers, mean-pooled over the real tokens."""

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, num_heads, dropout, max_positions):
        super().__init__()
        self.output_dim = embedding_dim
        self.embedding = TokenEmbedding(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                        max_positions=max_positions, dropout=dropout)
        layer = nn.TransformerEncoderLayer(**_layer(embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                                    num_heads=num_heads, dropout=dropout))
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(embedding_dim),
                                            enable_nested_tensor=False)

    def forward(self, input_ids, lengths):
        mask = padding_mask(lengths, input_ids.shape[1])  # (B, T)
        hidden = self.layers(self.embedding(input_ids), src_key_padding_mask=mask)  # (B, T, D)
        return masked_mean(hidden, lengths)  # (B, D)


class TransformerDecoder(PrefixDecoding, nn.Module):
    """(B, L) latent and (B, T) BOS-prefixed ids -> (B, T, V) logits, or one step at a time.

    The latent vector becomes ``memory_slots`` vectors that cross-attention reads: a few slots give it
    something to choose between; one slot would reduce it to adding the same vector everywhere.
    """

    is_sequence = True

    def __init__(self, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, num_heads, dropout,
                 max_positions, memory_slots=4, tie_embeddings=False):
        super().__init__()
        self.embedding_dim, self.memory_slots = embedding_dim, memory_slots
        self.embedding = TokenEmbedding(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                        max_positions=max_positions, dropout=dropout)
        self.latent_to_memory = nn.Linear(latent_dim, memory_slots * embedding_dim)
        layer = nn.TransformerDecoderLayer(**_layer(embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                                    num_heads=num_heads, dropout=dropout))
        self.layers = nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(embedding_dim))
        self.output = output_layer(in_dim=embedding_dim, vocab_size=vocab_size,
                                   tied_embedding=self.embedding.tokens if tie_embeddings else None)

    def _memory(self, latent):
        return self.latent_to_memory(latent).view(latent.shape[0], self.memory_slots, self.embedding_dim)  # (B, M, D)

    def _decode_memory(self, memory, decoder_input_ids):
        length = decoder_input_ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=memory.device)
        # Padding sits after each row's text, so the causal mask already keeps it out of view.
        hidden = self.layers(self.embedding(decoder_input_ids), memory, tgt_mask=causal, tgt_is_causal=True)
        return self.output(hidden)  # (B, T, V)
