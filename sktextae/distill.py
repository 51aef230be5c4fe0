"""A static student for a pretrained encoder (``static_encoder=True``): after ``fit``, the pretrained
model is replaced by a ``nn.StaticEncoder`` trained to give the same latent vectors, so that
``transform`` costs a token lookup and a weighted mean instead of a Transformer.

The student's token vectors start as model2vec's do: each token's vector is the pretrained encoder's
output for a text of that token alone (with the model's special tokens around it, pooled as the model
pools). It also counts bigrams, two neighbouring tokens of a text as the encoder reads it (the special
tokens included): those that two training texts or more hold, the most frequent first, up to the
vocabulary's size; each starts as the pretrained encoder's output for a text of those two tokens alone.
The vectors are then trained, with a weight per token and per bigram and a linear map shared by all, to
reproduce the teacher's latent vectors of the training texts (mean squared error after the fitted
bottleneck, which stays as it is, as does the decoder): the student learns what the pretrained model's
context adds to its tokens on the user's own texts. The map is then folded into the vectors, so that
``transform`` runs no more than lookups, a weighted mean and the bottleneck. A token no training text
holds keeps its pretrained static vector, under the shared map.
"""

import dataclasses
import functools
import logging

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split
from torch import nn
from torch.utils.data import Dataset

from . import bigram_choice, network
from .batching import pad
from .device import fork_rng_devices
from .inference import batched, end_to_end
from .nn import StaticEncoder
from .nn import bigrams as bigram_table
from .token_ids import TokenIds

logger = logging.getLogger("sktextae")

# The learning rate of the student's token vectors and weights (Adam, no weight decay: a token the
# training texts do not hold keeps its pretrained vector).
STUDENT_LR = 3e-3
# Tokens encoded at once for the starting vectors (each a text of one token and the special ones).
_TOKEN_BATCH = 1024


class _StudentOptimizer(torch.optim.Optimizer):
    """SparseAdam for the token ``tables`` (sparse gradients: a step touches the batch's tokens only) and
    Adam for the other parameters (the dense linear map), stepped as one optimizer."""

    def __init__(self, params, *, lr, tables):
        params = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
        sparse = [p for p in params if any(p is table for table in tables)]
        dense = [p for p in params if not any(p is table for table in tables)]
        self.parts = [optimizer(group, lr=lr) for optimizer, group in ((torch.optim.SparseAdam, sparse),
                                                                        (torch.optim.Adam, dense)) if group]
        super().__init__(params, {"lr": lr})

    def zero_grad(self, set_to_none=True):
        for optimizer in self.parts:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = closure() if closure is not None else None  # once: skorch's closure runs forward and backward
        for optimizer in self.parts:
            optimizer.step()
        return loss


class _Targets(Dataset):
    """Token sequences and the teacher's latent vector of each: ``(ids, target)`` items."""

    def __init__(self, sequences, targets):
        self.sequences, self.targets = sequences, targets

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        return self.sequences[index], self.targets[index]


def _collate(items, *, prefix, suffix):
    input_ids, lengths = pad([ids for ids, _ in items], prefix=prefix, suffix=suffix)  # (B, T), (B,)
    return {"input_ids": input_ids, "lengths": lengths}, torch.from_numpy(np.stack([t for _, t in items]))


class _Student(nn.Module):
    """The static encoder, a linear map (the identity at the start: what the context adds that a weighted
    sum of tokens can) and the fitted bottleneck (frozen): ids -> latent vectors, as ``transform``
    computes them once the map is folded into the token vectors (``fold``)."""

    def __init__(self, *, static, bottleneck):
        super().__init__()
        self.static, self.bottleneck = static, bottleneck
        width = static.output_dim
        self.project = nn.Linear(width, width)
        with torch.no_grad():
            self.project.weight.copy_(torch.eye(width))
            self.project.bias.zero_()

    def forward(self, input_ids, lengths):
        return self.bottleneck.mean(self.project(self.static(input_ids, lengths)))  # (B, L)

    @torch.no_grad()
    def fold(self):
        """Fold the linear map into the token and bigram vectors: the encoder's output is a weighted mean whose
        weights sum to 1, so mapping each vector (``E @ W.T + b``) maps the mean the same way."""
        for table in self.static.tables():  # (V, C), (K + 1, C)
            table.copy_(self.project(table))


def static_vectors(net, encoder, vocab_size, *, batch_size=_TOKEN_BATCH):
    """Each token's starting vector: ``encoder``'s output for a text of that token alone,
    (vocab_size, output_dim) float32."""
    return _alone(net, encoder, [np.array([token], dtype=np.int64) for token in range(vocab_size)], batch_size)


def bigram_vectors(net, encoder, keys, vocab_size, *, batch_size=_TOKEN_BATCH):
    """Each bigram's starting vector: ``encoder``'s output for a text of its two tokens alone (``keys``:
    ``first * vocab_size + second``), (len(keys), output_dim) float32."""
    pairs = [np.array(divmod(int(key), vocab_size), dtype=np.int64) for key in keys]
    return _alone(net, encoder, pairs, batch_size)


def _alone(net, encoder, sequences, batch_size):
    vectors = batched(net, sequences, lambda inputs, _: encoder(inputs["input_ids"], inputs["lengths"]),
                      batch_size=batch_size, targets=False)
    return torch.from_numpy(vectors)


def choose_bigrams(sequences, *, prefix, suffix, vocab_size):
    """The bigrams a student counts, of the token ``sequences`` as the encoder reads them (between ``prefix``
    and ``suffix``): those that two of them or more hold, the most first, up to ``vocab_size``. Returns how
    many (the student's ``bigrams``), its hash table's keys and rows (``nn.bigrams.fill_table``) and the
    keys of the rows, in row order (as many or, where the table had no room for some, fewer)."""
    sequences = TokenIds.of(sequences)
    prefix, suffix = np.asarray(prefix, dtype=np.int64), np.asarray(suffix, dtype=np.int64)
    lengths = sequences.lengths + len(prefix) + len(suffix)
    ids, _, _ = end_to_end(sequences, prefix, suffix)
    counts, keys = bigram_choice.count(ids, lengths, np.ones(vocab_size), vocab_size=vocab_size, unknown=-1)
    candidates = keys[bigram_choice.ranked(counts, keys)][:vocab_size]
    table_keys, table_rows, placed = bigram_choice.fill_table(candidates, size=bigram_table.table_size(len(candidates)),
                                                              vocab_size=vocab_size, limit=len(candidates))
    return len(candidates), table_keys, table_rows, candidates[placed]


def replace_with_static(estimator, sequences, *, n_valid, rng, targets=None):
    """Train a static student of ``estimator``'s fitted pretrained encoder on the token ``sequences`` (the
    training texts, ``n_valid`` of them held out for early stopping), put it in the encoder's place and
    record it in the network's spec. An interrupted training (Ctrl-C) raises ``KeyboardInterrupt`` and
    leaves the pretrained encoder in place. ``targets``, the fitted model's latent vectors of the
    sequences when the caller has them, saves encoding them again."""
    net = estimator.net_
    autoencoder = network.autoencoder_of(net.module_)
    teacher = autoencoder.encoder
    if targets is None:
        targets = batched(net, sequences, lambda inputs, _: autoencoder.encode(inputs["input_ids"], inputs["lengths"]),
                          batch_size=estimator.inference_batch_size, targets=False)  # (N, L)
    vocabulary = estimator.vocabulary_
    size = vocabulary.encoder_size
    bigrams, keys, rows, placed = choose_bigrams(sequences, prefix=vocabulary.encoder_prefix,
                                                 suffix=vocabulary.encoder_suffix, vocab_size=size)
    static = StaticEncoder(vocab_size=size, embedding_dim=teacher.output_dim,
                           vectors=static_vectors(net, teacher, size), bigrams=bigrams)
    if bigrams:
        static.set_bigrams(keys, rows)
        with torch.no_grad():
            static.bigram_embedding.weight[1:len(placed) + 1] = bigram_vectors(net, teacher, placed, size)
    bottleneck = autoencoder.bottleneck
    bottleneck_grad = [p.requires_grad for p in bottleneck.parameters()]
    bottleneck.requires_grad_(False)
    try:
        student = _Student(static=static, bottleneck=bottleneck)
        _train_student(estimator, student, sequences, targets, n_valid=n_valid, rng=rng)
        student.fold()
    finally:
        for parameter, grad in zip(bottleneck.parameters(), bottleneck_grad):
            parameter.requires_grad_(grad)
    autoencoder.encoder = static.requires_grad_(False)
    spec = dataclasses.replace(network.spec_of(net), static_encoder=True, freeze_encoder=True, static_bigrams=bigrams)
    net.module = functools.partial(network.build_module, spec, decoder_tokens=vocabulary.decoder_tokens)
    # The optimizer held the teacher's weights (in a group of their own) when it was fine-tuned: a fresh one
    # over what still trains, which keeps no reference to the teacher.
    vars(net).pop("optimizer__param_groups", None)
    net.initialize_optimizer()


def _train_student(estimator, student, sequences, targets, *, n_valid, rng):
    """Fit ``student`` to ``targets`` with ``n_valid`` texts held out for early stopping (``patience``),
    for at most ``max_epochs``."""
    vocabulary = estimator.vocabulary_
    sequences, order = TokenIds.of(sequences), rng.permutation(len(sequences))
    train = _Targets(sequences[order[n_valid:]], targets[order[n_valid:]])
    valid = _Targets(sequences[order[:n_valid]], targets[order[:n_valid]]) if n_valid else None
    callbacks = []
    if valid is not None and estimator.patience is not None:
        callbacks.append(("early_stopping", EarlyStopping(patience=estimator.patience, load_best=True,
                                                          sink=lambda *args, **kwargs: None)))
    collate = functools.partial(_collate, prefix=vocabulary.encoder_prefix, suffix=vocabulary.encoder_suffix)
    # Sparse gradients: a step updates the rows of the batch's tokens only, not the whole table.
    static = student.static
    lookups = [static.embedding, static.log_weight] + ([static.bigram_embedding, static.bigram_log_weight]
                                                        if static.bigrams else [])
    for lookup in lookups:
        lookup.sparse = True
    optimizer = functools.partial(_StudentOptimizer, tables=[lookup.weight for lookup in lookups])
    net = NeuralNet(student, criterion=nn.MSELoss, optimizer=optimizer, lr=STUDENT_LR,
                    max_epochs=estimator.max_epochs, batch_size=estimator.batch_size,
                    train_split=predefined_split(valid) if valid is not None else None,
                    iterator_train__shuffle=True, iterator_train__collate_fn=collate,
                    iterator_valid__collate_fn=collate, callbacks=callbacks, device=estimator.device_,
                    verbose=estimator.verbose)
    with torch.random.fork_rng(devices=fork_rng_devices(estimator.device_)):
        torch.manual_seed(int(rng.randint(2**31 - 1)))  # the shuffling: reproducible with random_state
        net.fit(train, None)
    for lookup in lookups:
        lookup.sparse = False
    logger.info("static_encoder: %d epochs, validation loss %s", len(net.history),
                net.history[-1].get("valid_loss") if len(net.history) else None)
    # skorch's fit returns quietly on a Ctrl-C; an epoch without its scores is one it cut short.
    last = net.history[-1] if len(net.history) else {}
    if "train_loss" not in last or (valid is not None and "valid_loss" not in last):
        raise KeyboardInterrupt(f"static_encoder: training the static encoder was interrupted in epoch "
                                f"{len(net.history)}; the model keeps its pretrained encoder")
