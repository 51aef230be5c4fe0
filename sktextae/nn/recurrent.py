"""GRU/LSTM: a bidirectional encoder whose final states are the text's hidden vector, and a decoder
conditioned on the latent vector twice (its initial state, and an input at every step, so that the
conditioning does not fade over long texts)."""

import torch
from torch import nn

from .base import output_layer

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}.")
    return CELLS[cell]


class RecurrentEncoder(nn.Module):
    """(B, T) ids -> (B, 2 * hidden_dim): each direction's state at the row's last real token."""

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout, cell="gru"):
        super().__init__()
        rnn = _check_cell(cell)
        self.hidden_dim, self.output_dim = hidden_dim, 2 * hidden_dim
        between_layers = dropout if num_layers > 1 else 0.0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        # Separate directional stacks (upper layers see one direction each): no packing, so no host-read lengths.
        self.forward_rnn = rnn(embedding_dim, hidden_dim, num_layers, batch_first=True, dropout=between_layers)
        self.backward_rnn = rnn(embedding_dim, hidden_dim, num_layers, batch_first=True, dropout=between_layers)

    def forward(self, input_ids, lengths):
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        positions = torch.arange(input_ids.shape[1], device=lengths.device)  # (T,)
        # Each row reversed within its own length; padding stays where it is, after the real tokens.
        reverse = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)  # (B, T)
        reversed_embedded = embedded.gather(1, reverse[..., None].expand_as(embedded))  # (B, T, E)
        forward_output, _ = self.forward_rnn(embedded)  # (B, T, H)
        backward_output, _ = self.backward_rnn(reversed_embedded)  # (B, T, H)
        # Each direction's last real position has read all of the text and none of the padding.
        last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, self.hidden_dim)  # (B, 1, H)
        return torch.cat([forward_output.gather(1, last), backward_output.gather(1, last)], dim=-1)[:, 0]  # (B, 2H)


class RecurrentDecoder(nn.Module):
    """(B, L) latent and (B, T) BOS-prefixed ids -> (B, T, V) logits, or one step at a time.

    ``tie_embeddings`` makes the logits layer share the token embedding matrix (the state is
    projected to the embedding width first).
    """

    is_sequence = True

    def __init__(self, *, vocab_size, latent_dim, embedding_dim, hidden_dim, num_layers, dropout, cell="gru",
                 tie_embeddings=False):
        super().__init__()
        rnn = _check_cell(cell)
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        between_layers = dropout if num_layers > 1 else 0.0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.latent_to_state = nn.Linear(latent_dim, num_layers * hidden_dim)
        self.rnn = rnn(embedding_dim + latent_dim, hidden_dim, num_layers, batch_first=True, dropout=between_layers)
        if tie_embeddings:
            self.project = nn.Linear(hidden_dim, embedding_dim)
            self.output = output_layer(in_dim=embedding_dim, vocab_size=vocab_size, tied_embedding=self.embedding)
        else:
            self.project, self.output = nn.Identity(), nn.Linear(hidden_dim, vocab_size)

    def init_state(self, latent):
        batch = latent.shape[0]
        hidden = torch.tanh(self.latent_to_state(latent))  # (B, layers * H)
        hidden = hidden.view(batch, self.num_layers, self.hidden_dim).transpose(0, 1).contiguous()  # (layers, B, H)
        rnn_state = (hidden, torch.zeros_like(hidden)) if self.cell == "lstm" else hidden
        return latent, rnn_state

    def _run(self, tokens, state):
        latent, rnn_state = state
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        conditioned = torch.cat([embedded, latent[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)
        output, rnn_state = self.rnn(conditioned, rnn_state)  # (B, T, H)
        return self.output(self.project(self.dropout(output))), (latent, rnn_state)  # (B, T, V)

    def forward(self, latent, decoder_input_ids):
        logits, _ = self._run(decoder_input_ids, self.init_state(latent))
        return logits

    def step(self, tokens, state):
        logits, state = self._run(tokens[:, None], state)  # tokens (B,) -> (B, 1)
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
