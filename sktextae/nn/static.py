"""A static encoder: one learned vector per token and per bigram (two neighbouring tokens), pooled by a
learned weighted mean. No context, so a text costs lookups and a sum; its vectors are trained to
reproduce a pretrained encoder's (see ``sktextae.distill``)."""

import types

import torch
from torch import nn

from . import bigrams as bigram_table
from .base import padding_mask


class StaticEncoder(nn.Module):
    """(B, T) ids -> (B, embedding_dim): the mean of the tokens' vectors, each token weighted by a learned
    positive weight (``exp`` of its log-weight, 1 at the start), padding excluded.

    ``vectors`` (a (vocab_size, embedding_dim) tensor) starts the token vectors, as a pretrained
    model's one-token outputs do (model2vec's static vectors); without, they start random.

    ``bigrams`` is how many bigrams it counts besides: two ids at neighbouring positions of the text as the
    encoder reads it (the special tokens around it included: the first and last tokens' bigrams with them
    say what begins and ends a text), each a term of the mean with a vector (``bigram_embedding``) and a
    log-weight of its own; row 0 stands for no bigram and weighs nothing. Which bigrams count is held in
    a hash table of their keys (``bigram_keys``) and rows (``bigram_rows``), filled by ``set_bigrams``:
    see ``nn.bigrams``. A bigram gives word order and phrases (``how many``, ``not good``) that a mean of
    single tokens cannot hold.
    """

    def __init__(self, *, vocab_size, embedding_dim, vectors=None, bigrams=0):
        super().__init__()
        if not isinstance(bigrams, int) or isinstance(bigrams, bool) or bigrams < 0:
            raise ValueError(f"bigrams must be an int >= 0, got {bigrams!r}.")
        self.output_dim, self.bigrams = embedding_dim, bigrams
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.log_weight = nn.Embedding(vocab_size, 1)
        nn.init.zeros_(self.log_weight.weight)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)
        if bigrams:
            self.bigram_embedding = nn.Embedding(bigrams + 1, embedding_dim)
            self.bigram_log_weight = nn.Embedding(bigrams + 1, 1)
            nn.init.zeros_(self.bigram_log_weight.weight)
            size = bigram_table.table_size(bigrams)
            self.register_buffer("bigram_keys", torch.full((size,), -1, dtype=torch.long))  # (S,)
            self.register_buffer("bigram_rows", torch.zeros(size, dtype=torch.long))  # (S,)

    @torch.no_grad()
    def set_bigrams(self, keys, rows):
        """The hash table of the bigrams counted (``nn.bigrams.fill_table``'s keys and rows)."""
        self.bigram_keys.copy_(torch.as_tensor(keys))
        self.bigram_rows.copy_(torch.as_tensor(rows))

    def tables(self):
        """The vector tables: the tokens', and the bigrams' where it counts any."""
        return [self.embedding.weight] + ([self.bigram_embedding.weight] if self.bigrams else [])

    def bigram_ids(self, input_ids, lengths):
        """(B, T) ids -> (B, T - 1) the row of ``bigram_embedding`` of each two neighbouring positions (0 where
        they make no bigram the encoder counts)."""
        return bigram_table.neighbour_rows(input_ids, lengths, self.bigram_keys, self.bigram_rows,
                                           self.embedding.num_embeddings)  # (B, T - 1)

    def forward(self, input_ids, lengths):
        keep = ~padding_mask(lengths, input_ids.shape[1])  # (B, T)
        parts = [(input_ids, self.log_weight(input_ids).squeeze(-1).exp() * keep, self.embedding)]  # (B, T) each
        if self.bigrams:  # a text of one position has none: the tensors below are then empty
            rows = self.bigram_ids(input_ids, lengths)  # (B, T - 1)
            parts.append((rows, self.bigram_log_weight(rows).squeeze(-1).exp() * (rows > 0), self.bigram_embedding))
        if torch.onnx.is_in_onnx_export():  # ONNX has no weighted embedding bag: the same sum, spelled out
            total = sum((weights[..., None] * table(ids)).sum(dim=1) for ids, weights, table in parts)  # (B, C)
        else:  # summed as it is looked up, without a (B, T, C) tensor
            total = sum(nn.functional.embedding_bag(ids, table.weight, mode="sum", per_sample_weights=weights,
                                                    sparse=table.sparse) for ids, weights, table in parts)  # (B, C)
        norm = sum(weights.sum(dim=1, keepdim=True) for _, weights, _ in parts)  # (B, 1)
        return total / norm.clamp(min=1e-6)  # (B, C)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        if bigram_table.check_rows(state_dict, prefix, self.bigrams, args[-1]):  # rows read from a file
            super()._load_from_state_dict(state_dict, prefix, *args)


@torch.no_grad()
def folded(encoder, layer):
    """A ``StaticEncoder`` and the linear ``layer`` after it as one table: a row per token, then a row per bigram
    (row 0 of them for none, at 0), each the vector mapped through the layer's weight and scaled by its
    weight, followed by the weight itself, (V + K + 1, out + 1); and the bigrams' hash table. The layer's
    output for a text is then the sum of its rows' first ``out`` columns over the sum of their last, plus
    the layer's bias: the same map with the vectors
    gathered at the layer's (smaller) width, as model2vec's static vectors are, in one gather. Computed
    anew for every call; ``inference.static_latents`` keeps it while the weights stay unchanged."""
    parts = [(encoder.embedding.weight, encoder.log_weight.weight.exp())]  # (V, C), (V, 1)
    out = types.SimpleNamespace(bigrams=encoder.bigrams, vocab_size=encoder.embedding.num_embeddings)
    if encoder.bigrams:
        weights = encoder.bigram_log_weight.weight.exp()  # (K + 1, 1)
        weights[0] = 0.0
        parts.append((encoder.bigram_embedding.weight, weights))
        out.bigram_table = encoder.bigram_keys.cpu(), encoder.bigram_rows.cpu()  # (S,) each
    out.table = torch.cat([torch.cat([weights * (vectors @ layer.weight.T), weights], dim=1)
                           for vectors, weights in parts])  # (V [+ K + 1], out + 1)
    return out
