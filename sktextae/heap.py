"""Keeping a long fit's memory on the CPU bounded by the batch, where glibc's ``malloc`` serves torch.

A training batch allocates buffers from a few kilobytes to tens of megabytes, of shapes that change
from batch to batch, and frees them. glibc maps a buffer of at least its "mmap threshold" on its own
and hands it back when freed; smaller ones come from the heap. The threshold starts at 128 KiB and
rises to the size of every mapped buffer freed (up to 32 MiB), so after the first batches buffers of
up to tens of megabytes come from the heap, where buffers of ever-changing sizes leave holes that the
next ones do not fit: the heap grows over the epoch, and with it the process's memory, by more the
more batches there are (``benchmarks/README.md``, "Training memory"). A fixed threshold of 1 MiB keeps
the large buffers out of the heap.

``limit_fragmentation`` sets it once per process, on Linux with glibc only, before a fit on the CPU;
where ``MALLOC_MMAP_THRESHOLD_`` is set in the environment, glibc has applied the user's own value and
nothing is changed.
"""

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger("sktextae")

MMAP_THRESHOLD = 1 << 20  # bytes: buffers this large or larger are mapped on their own
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
_state = {"set": False}


def limit_fragmentation():
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` for this process (once; see the module's
    docstring). Returns whether it is set by this call or an earlier one."""
    if _state["set"]:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    mallopt = _mallopt()
    if mallopt is None or mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return False
    _state["set"] = True
    logger.debug("glibc's mmap threshold fixed at %d bytes for this process", MMAP_THRESHOLD)
    return True


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is another (musl has none)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return function
