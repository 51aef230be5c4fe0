"""From token sequences to padded batches: the dataset, the length-bucketing sampler and the collator.

A batch is padded to its own longest text, not to the corpus maximum, and texts of similar length
are batched together so that little of each batch is padding. In training, that length is rounded up
to one of a few lengths (see ``ROUNDING_BITS``).
"""

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .token_ids import TokenIds
from .tokenization import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID

NOISE_TYPES = ("delete", "mask")

# Training batches are drawn from pools of this many batches, sorted by length inside each pool:
# batches stay random across the corpus while their texts have similar lengths.
_POOL_BATCHES = 50

# A training batch's padded length keeps this many leading binary digits, rounded up: 8, 10, 12, 14, 16,
# 20, 24, 28, 32, 40, 48, ..., 112, 128 (four lengths per doubling), at most a quarter more positions
# than its longest row. Padded to its own longest text alone, nearly every batch has a (B, T) shape of its
# own, and so does every activation and gradient buffer: on the CPU, glibc's heap fragments as buffers of
# ever-changing sizes come and go, and it grows over an epoch while the memory in use does not (fitting
# the Transformer on 10,000 AG News texts took 325 MB more at its peak than on 1,000; rounded, 129 MB:
# benchmarks/README.md, "Training memory"). Relative steps keep the extra padding of short texts small.
ROUNDING_BITS = 3


class TokenDataset(Dataset):
    """Token sequences (1-D int arrays, held as ``TokenIds``), their lengths, and optionally per-sequence extras.

    ``labels``: class indices with -1 for unlabelled, or float targets with NaN for unlabelled.
    ``encoder_hidden``: (n, H) float32, each text's encoder output computed beforehand (a frozen
    encoder's), which the module then reads instead of running its encoder. Items are the sequences,
    or dicts ``{"ids", "label", "encoder_hidden"}`` (the extras present) when there are extras.
    """

    def __init__(self, sequences, labels=None, encoder_hidden=None):
        self.sequences = TokenIds.of(sequences)
        self.labels, self.encoder_hidden = labels, encoder_hidden
        self.lengths = self.sequences.lengths

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        if self.labels is None and self.encoder_hidden is None:
            return self.sequences[index]
        item = {"ids": self.sequences[index]}
        if self.labels is not None:
            item["label"] = self.labels[index]
        if self.encoder_hidden is not None:
            item["encoder_hidden"] = self.encoder_hidden[index]
        return item

    def subset(self, indices):
        """The items at ``indices`` (an int array), as a new dataset that shares this one's ids."""
        return TokenDataset(self.sequences[indices],
                            None if self.labels is None else self.labels[indices],
                            None if self.encoder_hidden is None else self.encoder_hidden[indices])


class LengthBucketSampler(Sampler):
    """Yields lists of indices whose texts have similar lengths.

    With ``shuffle=False`` the batches run from the shortest texts to the longest (for inference);
    with ``shuffle=True`` each pass draws a fresh order from ``rng`` (a ``numpy.random.Generator``).
    """

    def __init__(self, lengths, *, batch_size, shuffle, rng=None):
        self.lengths, self.batch_size, self.shuffle, self.rng = np.asarray(lengths), batch_size, shuffle, rng

    def __len__(self):
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            yield from (order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size))
            return
        order = self.rng.permutation(len(self.lengths))
        pool = self.batch_size * _POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for i in self.rng.permutation(len(batches)):
            yield batches[i]


def inference_batches(lengths, *, batch_size):
    """Lists of indices for inference: shortest texts first, at most ``batch_size`` per batch, and a batch
    closed early where the next text would make padding more than half of it.

    Every row of a batch is padded to its longest text. Cut by count alone, a batch that spans short
    and long texts (a few hundred texts make one batch of 256) costs the long text's length for each
    short one: for texts of median 14 tokens and longest 100, seven times the work. The early cut keeps
    the padded size (texts times longest) within twice the tokens the batch holds, which costs nothing
    where lengths are alike; results do not depend on how texts are batched.
    """
    lengths = np.asarray(lengths, dtype=np.int64) + 1  # + 1: an empty text still takes a row
    batches, batch, tokens = [], [], 0
    for i in np.argsort(lengths, kind="stable").tolist():
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[i] > 2 * (tokens + lengths[i])):
            batches.append(batch)
            batch, tokens = [], 0
        batch.append(i)
        tokens += lengths[i]
    return batches + [batch] if batch else batches


def padded_width(longest, *, rounded=False, limit=None):
    """The padded length T of a batch whose longest row holds ``longest`` ids: itself, or with ``rounded``
    the next length of ``ROUNDING_BITS`` leading binary digits, but not past ``limit`` (when given) unless
    ``longest`` itself is longer."""
    width = longest
    if rounded:
        step = 1 << max(longest.bit_length() - ROUNDING_BITS, 0)
        width = -(-longest // step) * step
    if limit is not None:
        width = min(width, limit)
    return max(width, longest)


def pad(sequences, *, prefix=(), suffix=(), rounded=False, limit=None):
    """Stack sequences into a (B, T) int64 tensor padded with PAD_ID, and their (B,) lengths.

    T is the longest row's length (at least 1), rounded up as ``padded_width`` says.
    """
    prefix, suffix = np.asarray(prefix, dtype=np.int64), np.asarray(suffix, dtype=np.int64)
    lengths = np.array([len(s) + len(prefix) + len(suffix) for s in sequences], dtype=np.int64)
    width = padded_width(max(int(lengths.max(initial=0)), 1), rounded=rounded, limit=limit)
    out = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for row, seq in zip(out, sequences):
        row[:len(prefix) + len(seq) + len(suffix)] = np.concatenate([prefix, seq, suffix])
    return torch.from_numpy(out), torch.from_numpy(lengths)


def corrupt(sequence, *, noise, noise_type, rng):
    """Corrupt the encoder's copy of a text: each token independently with probability ``noise``.

    ``noise_type="delete"`` removes the chosen tokens (TSDAE: ``noise=0.6`` deletes about 60% of the
    tokens and keeps about 40%); ``"mask"`` replaces them with ``MASK_ID``. At least one token of a
    non-empty text is always left intact, so the encoder never sees nothing of it.
    """
    drop = rng.random(len(sequence)) < noise
    if len(sequence) and drop.all():
        drop[rng.integers(len(sequence))] = False
    if noise_type == "delete":
        return sequence[~drop]
    return np.where(drop, MASK_ID, sequence)


class Collator:
    """Turns a list of token sequences into ``(inputs, target_ids)`` for the module and the loss.

    The encoder reads ``encoder_prefix``, the text and ``encoder_suffix`` (by default the text followed
    by EOS, so that an empty text is still one token); a sequence decoder reads BOS followed by the
    text and predicts the text followed by EOS. A bag decoder (``sequence_targets=False``) predicts
    the text's own tokens. Target padding is ``PAD_ID``. ``decoder_ids``, an array indexed by the
    tokenizer's ids, maps each text's tokens into the decoder's own vocabulary (see ``vocabulary``).

    For training, ``noise`` corrupts the encoder's input (see ``corrupt``) while the targets stay the
    original text, and ``word_dropout`` replaces each decoder input token after BOS by ``UNK_ID`` with
    that probability (Bowman et al. 2016), so the decoder must lean on the latent vector. Both draw
    from ``rng`` afresh for every batch; at their default of 0 the collator is deterministic.

    Items with extras (dicts from ``TokenDataset``) add ``inputs["labels"]`` (read by the loss, not by
    the module) and ``inputs["encoder_hidden"]``, which replaces the encoder's input ids and lengths.

    ``round_lengths`` rounds each padded length up to one of a few (see ``ROUNDING_BITS``), but never
    past the padded length of a text of ``max_text_length`` tokens, the longest the dataset holds (one
    padded further would pass the positions a Transformer has): a batch's outputs and loss are the same,
    as the extra positions are padding, masked like any other.
    """

    def __init__(self, *, sequence_targets=True, noise=0.0, noise_type="delete", word_dropout=0.0, rng=None,
                 encoder_prefix=(), encoder_suffix=(EOS_ID,), decoder_ids=None, round_lengths=False, max_text_length=None):
        if round_lengths and max_text_length is None:
            raise ValueError("round_lengths=True needs max_text_length, the longest text's tokens, which caps the "
                             "padded length.")
        self.sequence_targets, self.noise, self.noise_type = sequence_targets, noise, noise_type
        self.word_dropout, self.rng = word_dropout, rng
        self.encoder_prefix, self.encoder_suffix, self.decoder_ids = encoder_prefix, encoder_suffix, decoder_ids
        self.round_lengths, self.max_text_length = round_lengths, max_text_length

    def __call__(self, items):
        extras = items[0] if items and isinstance(items[0], dict) else {}
        sequences = [item["ids"] for item in items] if extras else items
        inputs = {}
        if "encoder_hidden" in extras:
            inputs["encoder_hidden"] = torch.from_numpy(np.stack([item["encoder_hidden"] for item in items]))
        else:
            inputs["input_ids"], inputs["lengths"] = self.encoder_inputs(sequences)
        if "label" in extras:
            inputs["labels"] = torch.from_numpy(np.array([item["label"] for item in items]))
        if self.decoder_ids is not None:
            sequences = [self.decoder_ids[s] for s in sequences]
        if self.sequence_targets:
            inputs["decoder_input_ids"] = self._drop_words(self._pad(sequences, prefix=[BOS_ID])[0])
            target_ids, _ = self._pad(sequences, suffix=[EOS_ID])
        else:
            target_ids, _ = self._pad(sequences)
        return inputs, target_ids

    def encoder_inputs(self, sequences):
        """The encoder's (B, T) ids and (B,) lengths, corrupted by ``noise``."""
        if self.noise:
            sequences = [corrupt(s, noise=self.noise, noise_type=self.noise_type, rng=self.rng) for s in sequences]
        return self._pad(sequences, prefix=self.encoder_prefix, suffix=self.encoder_suffix)

    def _pad(self, sequences, *, prefix=(), suffix=()):
        limit = None if self.max_text_length is None else self.max_text_length + len(prefix) + len(suffix)
        return pad(sequences, prefix=prefix, suffix=suffix, rounded=self.round_lengths, limit=limit)

    def _drop_words(self, decoder_input_ids):
        if not self.word_dropout:
            return decoder_input_ids
        ids = decoder_input_ids.numpy()
        drop = (self.rng.random(ids.shape) < self.word_dropout) & (ids != PAD_ID) & (ids != BOS_ID)
        return torch.from_numpy(np.where(drop, UNK_ID, ids))
