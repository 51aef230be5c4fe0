"""Which bigrams (two ids at neighbouring positions of a text) an encoder counts, and the hash table that
holds them (``nn.bigrams``): counted in the training texts, those that two texts or more hold, the most
frequent first. Also the table's lookup in numpy (``find``), for a static encoder's ``transform``."""

import numpy as np
import scipy.sparse

from .nn.bigrams import BIGRAM_PROBES, slots


def fill_table(keys, *, size, vocab_size, limit):
    """Place up to ``limit`` of the bigram ``keys`` (``first * vocab_size + second``, in the order of
    preference) in a table of ``size`` slots. Returns its keys ((size,), -1 in an empty slot), its rows
    ((size,), the row of each key: 1 for the first placed, 2 for the next...) and the indices into
    ``keys`` of those placed, in row order. A bigram whose slots are all taken is skipped (the table has
    room for BIGRAM_LOAD times as many)."""
    table_keys, table_rows = np.full(size, -1, dtype=np.int64), np.zeros(size, dtype=np.int64)
    placed = []
    for index, key in enumerate(np.asarray(keys, dtype=np.int64).tolist()):
        if len(placed) == limit:
            break
        first, second = divmod(key, vocab_size)
        start = slots(first, second, size)
        free = next((slot for slot in ((start + p) % size for p in range(BIGRAM_PROBES)) if table_keys[slot] < 0), None)
        if free is not None:
            table_keys[free], table_rows[free] = key, len(placed) + 1
            placed.append(index)
    return table_keys, table_rows, np.asarray(placed, dtype=np.int64)


def find(first, second, keys, rows, vocab_size):
    """``nn.bigrams.lookup`` in numpy: the row of each bigram of ids ``first`` then ``second`` (int64 arrays of
    one shape) in the table of ``keys`` and ``rows``, 0 where it holds none. Each bigram is looked for slot by
    slot, as ``fill_table`` placed it, and only until an empty slot (where it would be): at a quarter full
    at most, nearly every one is settled by its first slot, so that most lookups read one slot, not
    ``BIGRAM_PROBES``."""
    size, found = len(keys), np.zeros(first.shape, dtype=np.int64)
    wanted, start = first * vocab_size + second, slots(first, second, len(keys))
    pending = np.arange(len(wanted))
    for probe in range(BIGRAM_PROBES):
        slot = (start[pending] + probe) % size
        key = keys[slot]
        hit = key == wanted[pending]
        found[pending[hit]] = rows[slot[hit]]
        pending = pending[~hit & (key >= 0)]  # the slot holds another bigram: it may be further on
        if not len(pending):
            break
    return found


def choose(terms, lengths, counted, *, vocab_size, unknown, size, limit):
    """The bigrams of texts (``terms``, their ids end to end, and each text's ``lengths``) to count: of those
    that ``count`` finds, the ones at least two texts hold, the most texts first (ties in the order of their
    keys), up to ``limit``, placed in a table of ``size`` slots (``fill_table``). Returns the table's keys and
    rows and the chosen bigrams' counts in each text ((N, chosen) CSR, column j for row j + 1)."""
    counts, keys = count(terms, lengths, counted, vocab_size=vocab_size, unknown=unknown)
    order = ranked(counts, keys)
    table_keys, table_rows, placed = fill_table(keys[order], size=size, vocab_size=vocab_size, limit=limit)
    return table_keys, table_rows, counts[:, order[placed]]


def ranked(counts, keys):
    """The columns of ``count``'s bigrams that at least two texts hold, the most texts first (ties in the order
    of their keys)."""
    texts = np.bincount(counts.indices, minlength=len(keys))  # (U,): how many texts hold each bigram
    order = np.lexsort((keys, -texts))
    return order[texts[order] >= 2]


def count(terms, lengths, counted, *, vocab_size, unknown):
    """The bigrams of texts (``terms``, their ids end to end, and each text's ``lengths``): two ids next to each
    other in one text, both ``counted`` (a (vocab_size,) array, > 0 for an id that counts) and neither
    ``unknown``. Returns their counts in each text ((N, U) CSR) and each column's key
    (``first * vocab_size + second``, sorted)."""
    terms = np.asarray(terms)
    first, second = terms[:-1], terms[1:]
    pairs = (counted[first] > 0) & (counted[second] > 0) & (first != unknown) & (second != unknown)  # (T - 1,)
    starts = np.cumsum(lengths) - lengths
    pairs[starts[(starts > 0) & (starts < len(terms))] - 1] = False  # the last id of a text and the first of the next
    keys, columns = np.unique(first[pairs].astype(np.int64) * vocab_size + second[pairs], return_inverse=True)
    # The pairs are in the texts' order: each text's row is a run of them, laid out as a CSR matrix's.
    per_text = np.bincount(np.repeat(np.arange(len(lengths)), lengths)[:-1][pairs], minlength=len(lengths))
    counts = scipy.sparse.csr_matrix((np.ones(len(columns)), columns.astype(np.int32),
                                      np.concatenate([[0], np.cumsum(per_text)])), shape=(len(lengths), len(keys)))
    counts.sum_duplicates()
    return counts, keys
