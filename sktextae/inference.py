"""Running a fitted network: the one inference loop (``batched``) that transform, scoring, the supervised
heads, the frozen encoder's cache and the active-units callback all go through; decoding latent
vectors in batches; and tokenizing texts with truncation reported at the caller's line.
"""

import contextlib
import os
import sys
import warnings
import weakref

import joblib
import numpy as np
import sklearn
import torch
from sklearn.utils import check_random_state

from . import bigram_choice
from .batching import TokenDataset, inference_batches
from .beam import SPECIAL_IDS
from .decoding import OPTIONS as DECODING_OPTIONS
from .decoding import decode_latent
from .exceptions import TruncationWarning
from .nn.static import folded
from .token_ids import TokenIds
from .tokenization import PAD_ID, encode
from .training import token_log_probs

# What decoding with a sequence decoder writes at most once per text: no 3-gram twice, so no loop.
DEFAULT_NO_REPEAT_NGRAM_SIZE = 3


@contextlib.contextmanager
def inference_context(net):
    """No gradients, the module in eval mode, bf16 on CUDA."""
    net.module_.eval()
    with torch.inference_mode(), net.autocast():
        yield


def batched(net, items, compute, *, batch_size, one_transfer=False, targets=True):
    """The one inference loop: ``compute(inputs, target_ids)`` on each batch, on the net's device, -> an
    array with one row per item, in input order (None for no items).

    ``items`` are token sequences or a ``batching.TokenDataset`` (whose extras, such as a frozen
    encoder's outputs, reach ``inputs``). Batches hold up to ``batch_size`` texts of similar lengths
    (shortest first, see ``batching.inference_batches``), collated as the net's vocabulary says, with no gradients, the module in eval mode and bf16
    on CUDA. Each batch's result is copied to the host as it comes, so that device memory holds one
    batch; ``one_transfer=True`` keeps them on the device and copies them all at the end, so that the
    device is waited for once (for a few thousand texts during training, see ``ActiveUnits``).
    ``targets=False`` (for plain sequences) collates the encoder's inputs only, and ``compute`` gets
    None for the target ids.
    """
    dataset = items if isinstance(items, TokenDataset) else TokenDataset(items)
    collate = net.vocabulary.collator(sequence_targets=net.module_.is_sequence_decoder)
    encoder_only = not targets and dataset.labels is None and dataset.encoder_hidden is None
    device, batches = net.device, []
    with inference_context(net):
        for indices in inference_batches(dataset.lengths, batch_size=batch_size):
            if encoder_only:  # the encoder's inputs alone: no decoder ids to build for a transform
                inputs, target_ids = dict(zip(("input_ids", "lengths"), collate.encoder_inputs(
                    [dataset[i] for i in indices]))), None
            else:
                inputs, target_ids = collate([dataset[i] for i in indices])
                target_ids = target_ids.to(device, non_blocking=True)
            inputs = {key: value.to(device, non_blocking=True) for key, value in inputs.items() if key != "labels"}
            rows = compute(inputs, target_ids).float()
            batches.append((indices, rows if one_transfer else rows.cpu().numpy()))
    if not batches:
        return None
    if one_transfer:
        rows = torch.cat([rows for _, rows in batches]).cpu().numpy()  # one read from the device
        lengths = np.cumsum([0] + [len(indices) for indices, _ in batches])
        batches = [(indices, rows[start:end]) for (indices, _), start, end in zip(batches, lengths[:-1], lengths[1:])]
    out = np.empty((len(dataset),) + batches[0][1].shape[1:], dtype=np.float32)
    for indices, rows in batches:
        out[indices] = rows
    return out


# A static model's folded tables (see nn.static.folded), per module, with the weights they were folded from.
_FOLDED = weakref.WeakKeyDictionary()


def _folded_static(module):
    """``nn.static.folded`` of a module's static encoder and its bottleneck's mean layer, kept while none of
    their weights changes (the key holds each weight's storage and in-place version: training, loading or
    moving the model gives another)."""
    encoder, layer = module.encoder, module.bottleneck.mean_layer
    tensors = [encoder.embedding.weight, encoder.log_weight.weight, layer.weight]
    if encoder.bigrams:
        tensors += [encoder.bigram_embedding.weight, encoder.bigram_log_weight.weight, encoder.bigram_keys,
                    encoder.bigram_rows]
    key = tuple((tensor.data_ptr(), tensor._version, tensor.dtype, tensor.device) for tensor in tensors)
    cached = _FOLDED.get(module)
    if cached is None or cached[0] != key:
        tables = folded(encoder, layer)
        if tables.bigrams:  # looked up in numpy (bigram_choice.find)
            tables.bigram_table = tuple(tensor.numpy() for tensor in tables.bigram_table)
        cached = _FOLDED[module] = (key, tables)
    return cached[1]


# Positions (ids, with the special ones around each text) that static_latents reads at once: its arrays then
# stay within a few hundred kilobytes, below the mmap threshold that a fit fixes (heap.py), and come from the
# heap instead of a fresh mapping each time (whose pages the kernel has to fault in).
_POSITIONS_PER_CALL = 1 << 15


def static_latents(net, sequences, *, prefix, suffix, positions_per_call=_POSITIONS_PER_CALL):
    """The latent vectors of a model whose encoder is a ``StaticEncoder``: the texts' ids end to end (each with
    the special tokens around it), ``positions_per_call`` of them at a time (or one text, if longer), with
    no padding, batching or collating, which at a few microseconds a text would cost more than the encoder
    itself, summed over the encoder and bottleneck folded into one table of the latent's width
    (``nn.static.folded``); the bigrams' rows are found in numpy (``bigram_choice.find``). -> (n, latent_dim)."""
    module = net.module_  # an autoencoder, or a supervised one, which passes encoder and bottleneck through
    prefix, suffix = np.asarray(prefix, dtype=np.int64), np.asarray(suffix, dtype=np.int64)
    sequences, out = TokenIds.of(sequences), []
    with inference_context(net):
        tables = _folded_static(module)  # (V [+ K + 1], L + 1) and the bigrams' hash table
        bias = module.bottleneck.mean_layer.bias  # (L,)
        ends, start = np.cumsum(sequences.lengths + len(prefix) + len(suffix)), 0
        while start < len(sequences):
            done = int(ends[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, done + positions_per_call, side="right")))
            chunk, start = sequences[start:stop], stop
            ids, offsets, last = end_to_end(chunk, prefix, suffix)  # (N,), (B,), (N,)
            if tables.bigrams:  # each position's bigram with the next; the last of a text's starts none
                rows = np.zeros(len(ids), dtype=np.int64)  # row 0: no bigram, which weighs nothing
                rows[:-1] = bigram_choice.find(ids[:-1], ids[1:], *tables.bigram_table, tables.vocab_size)
                rows[last] = 0
                # Each position's token, then its bigram: a text's rows stay together.
                ids, offsets = np.stack([ids, rows + tables.vocab_size], axis=1).reshape(-1), offsets * 2
            ids, offsets = torch.from_numpy(ids).to(net.device), torch.from_numpy(offsets).to(net.device)
            sums = torch.nn.functional.embedding_bag(ids, tables.table, offsets, mode="sum")  # (B, L + 1)
            total, norm = sums[:, :-1], sums[:, -1:]
            out.append((total / norm.clamp(min=1e-6) + bias).float().cpu().numpy())
    return np.concatenate(out) if out else None


def end_to_end(sequences, prefix, suffix):
    """The ids of ``sequences`` (``TokenIds``), each between ``prefix`` and ``suffix``, end to end ((N,)
    int64), where each text begins ((B,) int64) and whether each position is a text's last ((N,) bool)."""
    lengths, inner = sequences.lengths, sequences.flat()  # (B,), the texts' own ids end to end
    around = len(prefix) + len(suffix)
    ends = np.cumsum(lengths + around)  # (B,): where each text ends (exclusive)
    starts = ends - lengths - around
    ids = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
    # Position k of text i goes to starts[i] + len(prefix) + k.
    ids[np.arange(len(inner)) + np.repeat(starts + len(prefix) - (np.cumsum(lengths) - lengths), lengths)] = inner
    for k, token in enumerate(prefix):
        ids[starts + k] = token
    for k, token in enumerate(suffix):
        ids[ends - len(suffix) + k] = token
    last = np.zeros(len(ids), dtype=bool)
    last[ends - 1] = True
    return ids, starts, last


def encode_texts(tokenizer, texts, *, max_length, warn=True):
    """The texts' token sequences, cut to ``max_length``, and how many were cut; with ``warn``, a
    ``TruncationWarning`` at the caller's line when any was.

    The message gives the counts (the command line shows the part before the ";"), then the fix and how
    to hide it: a search (``GridSearchCV``) shows it again for every fit and score, since scikit-learn's
    parallel loop resets the warning filters for each one, which makes Python forget it was shown."""
    sequences, n_truncated = encode(tokenizer, texts, max_length=max_length)
    if n_truncated and warn:
        warn_at_caller(f"{n_truncated} of {len(texts)} texts were longer than max_length={max_length} tokens and "
                       f"were truncated; fit with a larger max_length to keep them whole, or hide this warning with "
                       f"warnings.filterwarnings('ignore', category=sktextae.TruncationWarning).", TruncationWarning)
    return sequences, n_truncated


def log_likelihoods(net, sequences, *, batch_size):
    """Per text: the summed token log-likelihood under the model and the number of tokens scored."""
    module = net.module_

    def compute(inputs, target_ids):
        latent = module.encode(inputs["input_ids"], inputs["lengths"])
        log_probs = token_log_probs(module.decode(latent, inputs.get("decoder_input_ids")), target_ids)
        return torch.stack([log_probs.sum(dim=1), (target_ids != PAD_ID).sum(dim=1).float()], dim=1)  # (B, 2)

    totals = batched(net, sequences, compute, batch_size=batch_size).astype(np.float64)
    return totals[:, 0], totals[:, 1]


def decode_batches(net, Z, options, *, max_length, n_tokens, batch_size, random_state):
    """Decode a checked float32 latent matrix to token sequences, ``batch_size`` vectors at a time,
    with the decoding ``options`` (see ``decoding.decode_latent``). ``no_repeat_ngram_size=None`` (or
    absent) is the guard against loops for a sequence decoder, and off for a bag, which has no order;
    a sequence decoder never writes the special ids inside a text."""
    unknown = set(options) - set(DECODING_OPTIONS)
    if unknown:
        raise TypeError(f"unknown decoding option(s) {sorted(unknown)}: use {', '.join(DECODING_OPTIONS)} or "
                        f"random_state.")
    sequence_decoder, options, sequences = net.module_.is_sequence_decoder, dict(options), []
    if options.get("no_repeat_ngram_size") is None:
        options["no_repeat_ngram_size"] = DEFAULT_NO_REPEAT_NGRAM_SIZE if sequence_decoder else 0
    if options.get("strategy") == "sample":
        options["generator"] = torch.Generator(device=net.device)
        options["generator"].manual_seed(int(check_random_state(random_state).randint(2**31 - 1)))
    with inference_context(net):
        for start in range(0, len(Z), batch_size):
            latent = torch.from_numpy(Z[start:start + batch_size]).to(net.device)
            sequences += decode_latent(net.module_, latent, max_length=max_length, n_tokens=n_tokens,
                                       never_write=SPECIAL_IDS if sequence_decoder else (), **options)
    return sequences


# Frames a warning skips to reach the caller's line: this package's, and those of scikit-learn's wrappers
# around its methods (set_output's, _fit_context, Pipeline, which calls through joblib.Memory).
_INTERNAL_FILES = tuple(os.path.dirname(os.path.abspath(file)) + os.sep
                        for file in (__file__, sklearn.__file__, joblib.__file__))


def warn_at_caller(message, category):
    """``warnings.warn`` at the first line outside this package and scikit-learn: the user's call of
    ``fit``, ``transform``, ``predict``, ``score``, ... or of a Pipeline's."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=_INTERNAL_FILES)
        return
    frame, stacklevel = sys._getframe(0), 1  # stacklevel=1 is this function's own line
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_FILES):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
