"""A 1-D convolutional encoder: stacked convolutions over the token embeddings, max-pooled over time
(Kim 2014; Zhang et al. 2017 for text autoencoders)."""

from torch import nn

from .base import masked_max, padding_mask


class ConvBlock(nn.Module):
    """A residual same-length convolution: (B, C, T) -> (B, C, T)."""

    def __init__(self, *, channels, kernel_size, dropout):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.activation, self.dropout = nn.GELU(), nn.Dropout(dropout)

    def forward(self, x):
        return x + self.dropout(self.activation(self.conv(x)))


class ConvEncoder(nn.Module):
    """(B, T) ids -> (B, hidden_dim): n-gram detectors anywhere in the text, their strongest match kept."""

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout, kernel_size=3):
        super().__init__()
        self.output_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Conv1d(embedding_dim, hidden_dim, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList([ConvBlock(channels=hidden_dim, kernel_size=kernel_size, dropout=dropout)
                                      for _ in range(num_layers - 1)])

    def forward(self, input_ids, lengths):
        pad = padding_mask(lengths, input_ids.shape[1])  # (B, T)
        x = self.dropout(self.embedding(input_ids)).masked_fill(pad[..., None], 0.0).transpose(1, 2)  # (B, E, T)
        keep = (~pad)[:, None, :].to(x.dtype)  # (B, 1, T)
        # Padding zeroed after every layer: a kernel reaching past a row's end reads zeros, as it does
        # when the row is batched alone, so a text's vector does not depend on its batch.
        x = self.project(x) * keep  # (B, H, T)
        for block in self.blocks:
            x = block(x) * keep
        return masked_max(x.transpose(1, 2), lengths)  # (B, H)
