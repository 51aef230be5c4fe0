"""A static encoder: one learned vector per token, pooled by a learned weighted mean. No context, so a
text costs a lookup and a sum; its vectors are trained to reproduce a pretrained encoder's (see
``sktextae.distill``)."""

import torch
from torch import nn

from .base import padding_mask


class StaticEncoder(nn.Module):
    """(B, T) ids -> (B, embedding_dim): the mean of the tokens' vectors, each token weighted by a learned
    positive weight (``exp`` of its log-weight, 1 at the start), padding excluded.

    ``vectors`` (a (vocab_size, embedding_dim) tensor) starts the token vectors, as a pretrained
    model's one-token outputs do (model2vec's static vectors); without, they start random.
    """

    def __init__(self, *, vocab_size, embedding_dim, vectors=None):
        super().__init__()
        self.output_dim = embedding_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.log_weight = nn.Embedding(vocab_size, 1)
        nn.init.zeros_(self.log_weight.weight)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)

    def forward(self, input_ids, lengths):
        keep = ~padding_mask(lengths, input_ids.shape[1])  # (B, T)
        weights = self.log_weight(input_ids).squeeze(-1).exp() * keep  # (B, T)
        if torch.onnx.is_in_onnx_export():  # ONNX has no weighted embedding bag: the same sum, spelled out
            total = (weights[..., None] * self.embedding(input_ids)).sum(dim=1)  # (B, C)
        else:  # summed as it is looked up, without a (B, T, C) tensor
            total = nn.functional.embedding_bag(input_ids, self.embedding.weight, mode="sum",
                                                per_sample_weights=weights, sparse=self.embedding.sparse)  # (B, C)
        return total / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)  # (B, C)


@torch.no_grad()
def folded(encoder, layer):
    """A ``StaticEncoder`` and the linear ``layer`` after it as one table: each token's vector mapped
    through the layer's weight and scaled by the token's weight, (V, out), and the weights, (V, 1). The
    layer's output for a text is then the sum of its rows of the first over the sum of its rows of the
    second, plus the layer's bias: the same map with the vectors gathered at the layer's (smaller) width,
    as model2vec's static vectors are. Computed anew for every call; ``inference.static_latents`` keeps it
    while the weights stay unchanged."""
    weights = encoder.log_weight.weight.exp()  # (V, 1)
    return weights * (encoder.embedding.weight @ layer.weight.T), weights  # (V, out), (V, 1)
