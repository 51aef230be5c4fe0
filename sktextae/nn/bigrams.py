"""The hash table of the bigrams an encoder counts (two ids at neighbouring positions), shared by the
bag-of-words and static encoders: filled once from the bigrams chosen (``sktextae.bigram_choice``), looked
up in the forward pass with gathers and comparisons only (``lookup``), so that it exports to ONNX."""

import torch

# A bigram sits in one of BIGRAM_PROBES slots from where its hash points (open addressing); the table has at
# least BIGRAM_LOAD slots per bigram, so that nearly every bigram finds one.
BIGRAM_PROBES, BIGRAM_LOAD = 8, 4


def table_size(bigrams):
    """The number of slots of the hash table of ``bigrams`` bigrams: BIGRAM_LOAD per bigram, at least."""
    return BIGRAM_LOAD * bigrams + 1


def slots(first, second, size):
    """The slot of a table of ``size`` where the bigram of ids ``first`` then ``second`` is first looked for
    (numpy arrays or torch tensors of int64 alike); it sits in that slot or one of the ``BIGRAM_PROBES - 1``
    after it, wrapping around. Both multipliers are odd and below 2**20, so the sum stays far inside int64
    for any vocabulary of up to 2**40 ids."""
    return (first * 92821 + second * 486187) % size


def lookup(first, second, keys, rows, vocab_size):
    """The row of each bigram of ids ``first`` then ``second`` (tensors of one shape) in the table of
    ``keys`` and ``rows`` (see ``fill_table``): 0 where the table does not hold it."""
    size = keys.shape[0]
    offsets = torch.arange(BIGRAM_PROBES, device=first.device)  # (P,)
    places = (slots(first, second, size)[..., None] + offsets) % size  # (..., P)
    found = keys[places] == (first * vocab_size + second)[..., None]  # (..., P): at most one slot holds the key
    return (rows[places] * found).sum(dim=-1)


def neighbour_rows(ids, lengths, keys, rows, vocab_size):
    """(B, T) ids -> (B, T - 1) the row of each two neighbouring positions of a text (``lookup``), 0 past its
    ``lengths`` (padding) or where the table holds no such bigram."""
    inside = torch.arange(1, ids.shape[1], device=ids.device)[None, :] < lengths[:, None]  # (B, T - 1)
    return lookup(ids[:, :-1], ids[:, 1:], keys, rows, vocab_size) * inside


def check_rows(state_dict, prefix, count, errors):
    """Whether the ``bigram_rows`` a weights file gives a module (under ``prefix``) lie in [0, ``count``]; when
    not, says so in ``errors`` (``_load_from_state_dict``'s error messages): a row beyond the table would
    index past it at every text that holds its key."""
    rows = state_dict.get(prefix + "bigram_rows")
    if rows is not None and rows.numel() and (int(rows.min()) < 0 or int(rows.max()) > count):
        errors.append(f"{prefix}bigram_rows holds rows {int(rows.min())} to {int(rows.max())}, outside "
                      f"[0, {count}] (the bigrams the network counts).")
        return False
    return True
