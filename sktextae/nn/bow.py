"""Bag of words: an encoder of the text's TF-IDF-weighted tokens (LSA's input, which it can start from),
and a decoder that predicts the text's bag of tokens (one distribution over the vocabulary, word order
ignored)."""

import torch
from torch import nn

from .base import masked_mean, output_layer

# How far apart the LSA start (``fitting.start_from_lsa``) puts the training texts: the standard deviation
# across them of each unit of their projection (averaged over units), the scale of input the MLP's first
# layer is initialised for.
LSA_START_STD = 1.0
# How the encoder weighs a text's tokens: "tfidf", or "mean" (the mean of their embeddings, which models
# saved by sktextae before the TF-IDF encoder hold).
WEIGHTINGS = ("tfidf", "mean")
# What a TF-IDF encoder counts: "words" (the tokens of each word, as ``terms`` maps them: the vocabulary's
# ``bag_terms``), or "tokens" (every token, as models saved by sktextae before it count them).
COUNTS = ("words", "tokens")


def _mlp(*, in_dim, hidden_dim, num_layers, dropout):
    layers = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class BagOfWordsEncoder(nn.Module):
    """(B, T) ids -> (B, output_dim): a text as a weighted sum of its token embeddings, and an MLP of it.

    ``weighting="tfidf"``: each token weighs its sublinear TF-IDF (``1 + log(count)`` times its IDF, the
    ``idf`` buffer that ``fitting.start_from_lsa`` fills; a token of IDF 0 is ignored), L2-normalised over the
    text, as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` weighs it. The weighted sum of the
    embeddings (the *projection*) is then LSA's projection when the table holds LSA's components. The
    output is the MLP's output beside the projection (``output_dim = hidden_dim + embedding_dim``;
    ``projection`` is the slice of its columns), so that a layer reading it can start from the
    projection alone and training adds what the MLP finds.

    ``terms``, a (V,) tensor of ids (TF-IDF only), names the token each token counts as: the encoder reads
    ``terms[input_ids]`` where it reads ids, so tokens of one term share its count, IDF and embedding, and a
    token whose term is 0 (padding) counts as nothing. It is no weight of the model: the vocabulary gives
    it (``Vocabulary.bag_terms``) whenever the model is built. None counts every token as itself.

    ``weighting="mean"``: the MLP of the mean of the token embeddings (``output_dim = hidden_dim``), the
    encoder of models saved by earlier versions.
    """

    def __init__(self, *, vocab_size, embedding_dim, hidden_dim, num_layers, dropout, weighting="tfidf", terms=None):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self.weighting = weighting
        if terms is not None:
            terms = torch.as_tensor(terms, dtype=torch.long, device="cpu")
            if weighting != "tfidf" or terms.shape != (vocab_size,) or not bool(((terms >= 0) & (terms < vocab_size)).all()):
                raise ValueError(f"terms must be a ({vocab_size},) tensor of ids in [0, {vocab_size}) for a TF-IDF "
                                 f"encoder, got shape {tuple(terms.shape)} with weighting={weighting!r}.")
        self.register_buffer("terms", terms, persistent=False)  # (V,) or None
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.mlp = _mlp(in_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        if weighting == "mean":
            self.output_dim, self.projection = hidden_dim, None
        else:
            self.register_buffer("idf", torch.ones(vocab_size))  # (V,)
            self.output_dim, self.projection = hidden_dim + embedding_dim, slice(hidden_dim, hidden_dim + embedding_dim)

    def token_weights(self, input_ids, lengths):
        """(B, T) ids -> (B, T) each position's share of its text's L2-normalised sublinear TF-IDF vector
        (a token that occurs ``c`` times has ``c`` positions that share its weight); 0 on padding."""
        batch, length = input_ids.shape
        valid = (torch.arange(length, device=input_ids.device)[None, :] < lengths[:, None]).to(torch.float32)
        counts = torch.zeros(batch, self.idf.shape[0], device=input_ids.device)  # (B, V)
        counts = counts.scatter_add(1, input_ids, valid).gather(1, input_ids).clamp(min=1.0)  # (B, T)
        tfidf = (1.0 + torch.log(counts)) * self.idf[input_ids]  # (B, T): the weight of each position's token
        shares = valid * tfidf / counts  # (B, T)
        # Summed over positions, shares * tfidf is each distinct token's weight squared, once.
        norms = (shares * tfidf).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)  # (B, 1)
        return shares / norms

    def forward(self, input_ids, lengths):
        if self.weighting == "mean":
            return self.mlp(masked_mean(self.embedding(input_ids), lengths))  # (B, H)
        if self.terms is not None:
            input_ids = self.terms[input_ids]  # (B, T)
        weights = self.token_weights(input_ids, lengths).to(self.embedding.weight.dtype)  # (B, T)
        projection = (weights[..., None] * self.embedding(input_ids)).sum(dim=1)  # (B, C)
        return torch.cat([self.mlp(projection), projection], dim=-1)  # (B, H + C)


class BagDecoder(nn.Module):
    """(B, L) latent -> (B, V) logits of the bag's tokens.

    With ``embedding_dim``, the last layer is a token embedding matrix (``self.embedding``, tied to
    the logits layer) that can start from a pretrained model's; without, a plain linear layer.
    """

    is_sequence = False

    def __init__(self, *, vocab_size, latent_dim, hidden_dim, num_layers, dropout, embedding_dim=None):
        super().__init__()
        self.mlp = _mlp(in_dim=latent_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        if embedding_dim is None:
            self.embedding, self.project = None, nn.Identity()
            self.output = nn.Linear(hidden_dim, vocab_size)
        else:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            self.project = nn.Linear(hidden_dim, embedding_dim)
            self.output = output_layer(in_dim=embedding_dim, vocab_size=vocab_size, tied_embedding=self.embedding)

    def forward(self, latent, decoder_input_ids=None):
        return self.output(self.project(self.mlp(latent)))  # (B, V)
