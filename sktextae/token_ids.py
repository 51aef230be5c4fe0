"""Many texts' token ids held in one flat array.

A corpus kept as one NumPy array per text costs every text an array object besides its ids, and ids
of 8 bytes where 4 hold any vocabulary. ``TokenIds`` keeps the ids of all the texts end to end in one
``int32`` array, and each text as where its ids start and stop in it; a subset or a new order of the
texts is a view that shares that array (``ids[indices]``), so that a fit's training and validation
split copy no ids.
"""

from collections.abc import Sequence
from numbers import Integral

import numpy as np

ID_DTYPE = np.int32


class TokenIds(Sequence):
    """A sequence of texts' token ids: ``ids[i]`` is text ``i``'s ids, a read-only 1-D ``int32`` array.

    Indexing with a slice or an array of indices gives a ``TokenIds`` of those texts, a view that shares
    the flat array. Build one from per-text sequences with ``TokenIds.of``.

    Parameters
    ----------
    values : numpy.ndarray
        (N,) ``int32``, the ids of all the texts end to end (made read-only).
    starts, stops : numpy.ndarray
        (n,) ``int64``: text ``i``'s ids are ``values[starts[i]:stops[i]]``.
    """

    __slots__ = ("values", "starts", "stops")

    def __init__(self, values, starts, stops):
        values, starts, stops = np.asarray(values), np.asarray(starts), np.asarray(stops)
        if values.ndim != 1 or values.dtype != ID_DTYPE:
            raise TypeError(f"values must be a 1-D {np.dtype(ID_DTYPE).name} array, got {values.ndim}-D {values.dtype}.")
        if starts.shape != stops.shape or starts.ndim != 1:
            raise ValueError(f"starts {starts.shape} and stops {stops.shape} must be 1-D arrays of one length.")
        if len(starts) and (starts.min() < 0 or stops.max() > len(values) or np.any(stops < starts)):
            raise ValueError(f"every text's ids must lie within the {len(values)} values, starts <= stops.")
        values.flags.writeable = False  # items are views of it: a change would reach every holder of the texts
        self.values = values
        self.starts, self.stops = starts.astype(np.int64, copy=False), stops.astype(np.int64, copy=False)

    @classmethod
    def of(cls, sequences):
        """``sequences`` (one 1-D array or list of int per text) as ``TokenIds``; a ``TokenIds`` as itself."""
        if isinstance(sequences, TokenIds):
            return sequences
        arrays = [np.asarray(sequence).reshape(-1) for sequence in sequences]
        for array in arrays:
            if len(array) and not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"token ids must be integers, got an array of {array.dtype}.")
            if len(array) and (array.min() < 0 or array.max() > np.iinfo(ID_DTYPE).max):
                raise ValueError(f"token ids must lie in [0, {np.iinfo(ID_DTYPE).max}], got {int(array.min())} to "
                                 f"{int(array.max())}.")
        lengths = np.fromiter((len(array) for array in arrays), dtype=np.int64, count=len(arrays))
        stops = np.cumsum(lengths)
        values = np.concatenate([np.zeros(0, ID_DTYPE), *arrays]).astype(ID_DTYPE, copy=False)
        return cls(values, stops - lengths, stops)

    @property
    def lengths(self):
        """(n,) int64: how many ids each text holds."""
        return self.stops - self.starts

    def flat(self):
        """(sum of lengths,) ``int32``: the texts' ids end to end, in this sequence's order."""
        lengths = self.lengths
        if not len(lengths):
            return self.values[:0]
        if np.array_equal(self.starts[1:], self.stops[:-1]):  # contiguous, in order: a view
            return self.values[self.starts[0]:self.stops[-1]]
        # Position k of text i in the flat output reads values[starts[i] + k].
        shifts = np.repeat(self.starts - (np.cumsum(lengths) - lengths), lengths)  # (N,)
        return self.values[np.arange(len(shifts)) + shifts]

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index):
        if isinstance(index, Integral) and not isinstance(index, bool):
            return self.values[self.starts[index]:self.stops[index]]
        if isinstance(index, slice):
            return TokenIds(self.values, self.starts[index], self.stops[index])
        index = np.asarray(index)
        if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer) or len(index) == 0):
            raise TypeError(f"TokenIds takes an int, a slice or a 1-D array of ints as its index, got {index.dtype} "
                            f"of shape {index.shape}.")
        index = index.astype(np.int64, copy=False)
        return TokenIds(self.values, self.starts[index], self.stops[index])

    def __iter__(self):
        values = self.values
        for start, stop in zip(self.starts.tolist(), self.stops.tolist()):
            yield values[start:stop]

    def __repr__(self):
        return f"TokenIds({len(self)} texts, {int(self.lengths.sum())} ids)"
