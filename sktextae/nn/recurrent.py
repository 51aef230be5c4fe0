"""GRU/LSTM encoder-decoder: a bidirectional encoder whose final states become the latent vector,
and a decoder conditioned on the latent vector twice (its initial state, and an input at every step,
so that the conditioning does not fade over long texts)."""

import torch
from torch import nn

from .base import AutoencoderModule, make_bottleneck

_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentAutoencoder(AutoencoderModule):
    def __init__(self, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, dropout, variational=False,
                 cell="gru"):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}.")
        rnn = _CELLS[cell]
        self.cell, self.latent_dim, self.num_layers, self.hidden_dim = cell, latent_dim, num_layers, hidden_dim
        between_layers = dropout if num_layers > 1 else 0.0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        # Separate directional stacks (upper layers see one direction each): no packing, so no host-read lengths.
        self.forward_encoder = rnn(embedding_dim, hidden_dim, num_layers, batch_first=True, dropout=between_layers)
        self.backward_encoder = rnn(embedding_dim, hidden_dim, num_layers, batch_first=True, dropout=between_layers)
        self.bottleneck = make_bottleneck(hidden_dim=2 * hidden_dim, latent_dim=latent_dim, variational=variational)
        self.latent_to_state = nn.Linear(latent_dim, num_layers * hidden_dim)
        self.decoder = rnn(embedding_dim + latent_dim, hidden_dim, num_layers, batch_first=True,
                           dropout=between_layers)
        self.output = nn.Linear(hidden_dim, vocab_size)

    def encode_hidden(self, input_ids, lengths):
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        positions = torch.arange(input_ids.shape[1], device=lengths.device)  # (T,)
        # Each row reversed within its own length; padding stays where it is, after the real tokens.
        reverse = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)  # (B, T)
        reversed_embedded = embedded.gather(1, reverse[..., None].expand_as(embedded))  # (B, T, E)
        forward_output, _ = self.forward_encoder(embedded)  # (B, T, H)
        backward_output, _ = self.backward_encoder(reversed_embedded)  # (B, T, H)
        # Each direction's last real position has read all of the text and none of the padding.
        last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, self.hidden_dim)  # (B, 1, H)
        return torch.cat([forward_output.gather(1, last), backward_output.gather(1, last)], dim=-1)[:, 0]  # (B, 2H)

    def init_state(self, latent):
        batch = latent.shape[0]
        hidden = torch.tanh(self.latent_to_state(latent))  # (B, layers * H)
        hidden = hidden.view(batch, self.num_layers, self.hidden_dim).transpose(0, 1).contiguous()  # (layers, B, H)
        rnn_state = (hidden, torch.zeros_like(hidden)) if self.cell == "lstm" else hidden
        return latent, rnn_state

    def _run_decoder(self, tokens, state):
        latent, rnn_state = state
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        conditioned = torch.cat([embedded, latent[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)
        output, rnn_state = self.decoder(conditioned, rnn_state)  # (B, T, H)
        return self.output(self.dropout(output)), (latent, rnn_state)  # (B, T, V)

    def decode(self, latent, decoder_input_ids):
        logits, _ = self._run_decoder(decoder_input_ids, self.init_state(latent))
        return logits

    def step(self, tokens, state):
        logits, state = self._run_decoder(tokens[:, None], state)  # tokens (B,) -> (B, 1)
        return logits[:, 0], state

    def reorder_state(self, state, index):
        """Row ``i`` of the new state is row ``index[i]`` of ``state``: selects, reorders or repeats rows.

        ``index`` is a 1-D LongTensor on the state's device (beam search expands each row to its beams
        with it, then follows the surviving beams).
        """
        latent, rnn_state = state
        # The RNN state keeps the batch in dim 1: (layers, B, H), and a pair of those for an LSTM.
        if self.cell == "lstm":
            rnn_state = tuple(part.index_select(1, index) for part in rnn_state)
        else:
            rnn_state = rnn_state.index_select(1, index)
        return latent.index_select(0, index), rnn_state
