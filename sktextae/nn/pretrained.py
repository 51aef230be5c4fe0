"""A pretrained language model (a Hugging Face ``PreTrainedModel``, BERT-like) as an encoder, pooled
to one vector per text as its sentence-transformers configuration says."""

from torch import nn

from .base import masked_max, masked_mean, padding_mask

POOLING = ("mean", "cls", "max", "mean_sqrt_len")


class PretrainedEncoder(nn.Module):
    """(B, T) ids of the model's own vocabulary -> (B, hidden_size).

    ``model`` is called as ``model(input_ids=..., attention_mask=...)`` and must return an object with
    ``last_hidden_state`` (B, T, C). The ids come with the model's own special tokens (``[CLS]`` ...
    ``[SEP]``) already around the text; padding (any id past ``lengths``) is replaced by
    ``pad_token_id`` and masked out of attention and pooling. ``normalize`` L2-normalises the pooled
    vector (sentence-transformers' ``Normalize`` module).
    """

    def __init__(self, *, model, output_dim, pooling="mean", normalize=False, pad_token_id=0):
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}.")
        self.model, self.output_dim = model, output_dim
        self.pooling, self.normalize, self.pad_token_id = pooling, normalize, pad_token_id

    @property
    def input_embeddings(self):
        return self.model.get_input_embeddings()  # nn.Embedding (V, C)

    def forward(self, input_ids, lengths):
        pad = padding_mask(lengths, input_ids.shape[1])  # (B, T)
        ids = input_ids.masked_fill(pad, self.pad_token_id)
        hidden = self.model(input_ids=ids, attention_mask=(~pad).long()).last_hidden_state  # (B, T, C)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = masked_max(hidden, lengths)
        else:
            pooled = masked_mean(hidden, lengths)  # (B, C)
            if self.pooling == "mean_sqrt_len":
                pooled = pooled * lengths.clamp(min=1).to(pooled.dtype).sqrt()[:, None]
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled
