"""Data-parallel training over the processes of a ``torch.distributed`` job (``data_parallel=True``).

The job is launched by PyTorch's own launcher, ``torchrun --nproc_per_node N script.py`` (on several
machines, ``--nnodes`` and a rendezvous address), which starts N copies of the user's script and tells
each its rank through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). Every process calls ``fit`` with the same texts; the first fit joins the process
group (``gloo`` on the CPU, ``nccl`` on CUDA) unless the script has already. Then:

- what every process must agree on comes from rank 0: the random source of the fit (the validation
  split, the order of the batches) and the tokenizer it trains;
- every training batch of one process's ``batch_size`` is split across the processes (``split_batches``),
  and PyTorch's ``DistributedDataParallel`` averages the gradients, so each step is that of one
  process with the same batches, the work divided;
- a frozen pretrained encoder's outputs, computed once per fit, are computed in shares and gathered;
- each process computes the validation loss on all the held-out texts, so early stopping decides
  alike everywhere; the training loss of each batch is averaged across the processes once per epoch;
- only rank 0 writes: ``save`` on the other ranks waits until rank 0 has written, and writes nothing;
  ``checkpoint_dir``'s checkpoints are rank 0's, and every process resumes from the one it reads
  (``checkpoint.FollowerCheckpoints``).

This module holds the process-group side (joining, rank 0's values, the batch split); the net's side
is in ``training``.
"""

import atexit
import os

import numpy as np
import torch
import torch.distributed as dist

from .files import texts_sha256

LAUNCH_HINT = ("launch the script with `torchrun --nproc_per_node N script.py` (or start its processes with "
               "RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set), or call torch.distributed.init_process_group first")


def join(device):
    """Join the job's process group (initialising it from the launcher's environment when the script
    has not) and return the device this process trains on: with CUDA, the GPU of its ``LOCAL_RANK``
    unless ``device`` names one. Raises ``ValueError`` outside a ``torch.distributed`` job."""
    if not dist.is_available():
        raise ValueError("data_parallel=True needs torch.distributed, which this build of torch lacks.")
    cuda = torch.device(device).type == "cuda"
    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            raise ValueError(f"data_parallel=True trains over the processes of a torch.distributed job, but this "
                             f"process is not in one (no RANK and WORLD_SIZE in its environment): {LAUNCH_HINT}; "
                             f"or set data_parallel=False.")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        # Left to the interpreter's teardown, the group's background threads can abort the process at exit.
        atexit.register(_leave)
    if cuda and torch.device(device).index is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def _leave():
    if dist.is_initialized():
        dist.destroy_process_group()


def active():
    """Whether this process is in an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank():
    """This process's rank in the job (0 outside one)."""
    return dist.get_rank() if active() else 0


def world_size():
    """The number of processes in the job (1 outside one)."""
    return dist.get_world_size() if active() else 1


def from_rank_0(value):
    """Rank 0's ``value`` (any picklable object), on every process."""
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def check_same_texts(texts, labels=None):
    """Raise ``ValueError`` unless every process passed the same texts (and labels) to ``fit``: a digest of
    each process's, compared across the job."""
    digests = [None] * world_size()
    dist.all_gather_object(digests, (len(texts), texts_sha256(texts, labels)))
    if len(set(digests)) > 1:
        sizes = ", ".join(f"rank {i}: {n} texts" for i, (n, _) in enumerate(digests))
        raise ValueError(f"with data_parallel=True every process must call fit with the same texts and labels (each "
                         f"trains on its share of every batch); they differ here ({sizes}). Read the whole corpus in "
                         f"every process.")


def written_by_rank_0(write, what):
    """``write()``'s result: called in rank 0 alone, while the other processes wait to hear that it is done
    (and raise ``RuntimeError`` naming ``what`` and rank 0's error when it failed). For the job's files,
    which every process holds alike: only one writes them."""
    if rank() == 0:
        try:
            written = write()
        except BaseException as error:
            from_rank_0(f"{type(error).__name__}: {error}")
            raise
        from_rank_0(None)
        return written
    failure = from_rank_0(None)
    if failure is not None:
        raise RuntimeError(f"rank 0 of the data-parallel job did not write {what}: {failure}")
    return None


def computed_in_shares(n_rows, compute):
    """The rows 0 to ``n_rows - 1`` of an array, each process computing its share (every ``world_size``-th
    row from its rank on: ``compute(indices)`` -> an array with a row per index, or None for none), gathered
    in every process: work such as a frozen encoder's outputs for every text, divided across the job."""
    world = world_size()
    part = compute(np.arange(rank(), n_rows, world))
    parts = [None] * world
    dist.all_gather_object(parts, part)
    first = next((part for part in parts if part is not None), None)
    if first is None:
        return None
    rows = np.empty((n_rows, *first.shape[1:]), dtype=first.dtype)
    for i, part in enumerate(parts):
        if part is not None:
            rows[i::world] = part
    return rows


def barrier():
    if active():
        dist.barrier()


class SplitBatches:
    """The batches of ``batches`` (a batch sampler), each split across ``world_size`` processes: this
    process (``rank``) gets every ``world_size``-th index of each batch, from its ``rank``-th on.

    Every process draws the same batches (their order is seeded alike), so the processes' shares of a
    batch are disjoint and together make it whole. A batch of fewer texts than processes gives each
    process one of them, some twice: every process must take part in every step, or the gradients'
    all-reduce would wait forever.
    """

    def __init__(self, batches, *, rank, world_size):
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self):
        for batch in self.batches:
            batch = list(batch)
            if len(batch) >= self.world_size:
                yield batch[self.rank::self.world_size]
            else:
                yield [batch[self.rank % len(batch)]]

    def __len__(self):
        return len(self.batches)
