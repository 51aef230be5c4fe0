"""The skorch net that trains an autoencoder module: batching, device transfer, bf16 and the loss.

skorch's hooks are overridden (``get_iterator``, ``infer``, ``get_loss``); its ``fit`` loop, callbacks
and history are used as they are. ``run_single_epoch`` is the one deliberate exception to the rule of
overriding hooks only: it keeps skorch's loop and bookkeeping but reads the per-batch losses from the
device once per epoch instead of once per batch, notes a Ctrl-C and stops on a non-finite loss (see
there). ``tests/test_training.py`` runs skorch's own ``run_single_epoch`` beside it and checks that the
history holds the same values.
"""

import contextlib
import logging

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import get_len
from torch.utils.data import DataLoader

from . import data_parallel as distributed_job
from .batching import LengthBucketSampler

# The padding id is also the target padding: no real target is ever PAD_ID.
from .device import is_cuda
from .exceptions import NonFiniteLossError
from .tokenization import PAD_ID

logger = logging.getLogger("sktextae")

# The weight of the penalty that holds a fit near its start (``AutoencoderNet.anchor_``): per unit of the
# squared distance, beside the reconstruction loss per token. Measured with the bag of words' LSA start,
# which training without it moved away from on some data (bench_default_lsa.py).
ANCHOR_WEIGHT = 0.001


def token_log_probs(logits, target_ids):
    """Log-probability of each target token, 0 at padding: (B, T) for both decoder kinds.

    ``logits`` is (B, T, V) for a sequence decoder or (B, V) for a bag decoder, whose one
    distribution scores every token of the text.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    if log_probs.dim() == 2:
        # Gather from the one (B, V) distribution directly: expanding it to (B, T, V) would make its
        # gradient a full (B, T, V) tensor.
        picked = log_probs.gather(-1, target_ids)  # (B, T)
    else:
        picked = log_probs.gather(-1, target_ids[..., None]).squeeze(-1)  # (B, T)
    return picked.masked_fill(target_ids == PAD_ID, 0.0)


class AutoencoderNet(NeuralNet):
    """A ``skorch.NeuralNet`` for autoencoder modules fed by ``TokenDataset``.

    Parameters beyond ``NeuralNet``'s
    ---------------------------------
    shuffle_seed : int
        Seeds the order of the training batches and the noise (fresh draws every epoch).
    use_bf16 : bool
        Run the module under bf16 autocast (CUDA only; the loss is computed in fp32).
    noise, noise_type, word_dropout : float, str, float
        Training-time corruption, see ``batching.Collator``.
    free_bits : float
        Floor, in nats, on each latent unit's batch-mean KL in the training loss (variational
        modules; Kingma et al. 2016): units below it are not pushed further towards the prior.
    kl_weight : float
        Weight of the KL term in the training loss; ``callbacks.KLAnnealing`` raises it from 0 to 1.
    task : {None, "classification", "regression"}
        The supervised head's loss (``nn.SupervisedAutoencoder``): cross-entropy over labels >= 0,
        or mean squared error over non-NaN targets; unlabelled texts add only reconstruction.
    reconstruction_weight : float
        Weight of the reconstruction loss beside the supervised loss.
    class_weight : list of float or None
        Per-class weights of the cross-entropy.
    vocabulary : vocabulary.Vocabulary
        The ids around each text for the encoder, and the decoder's own ids (``Vocabulary.collator``).
    data_parallel : bool
        Train over the processes of a ``torch.distributed`` job (see ``sktextae.data_parallel``): each
        training batch split across them, the gradients averaged by ``DistributedDataParallel``, the
        per-batch training losses averaged across them at the end of each pass.
    unused_parameters : bool
        Whether some trainable weights take no part in the loss (a pretrained model's pooler, which the
        package does not use): ``DistributedDataParallel`` must then look for them at every step.

    Attributes beyond ``NeuralNet``'s
    ---------------------------------
    interrupted_ : bool
        Whether the last ``partial_fit`` call was stopped by a ``KeyboardInterrupt`` (Ctrl-C) in a
        training or validation pass, rather than by a callback's deliberate stop such as
        ``EarlyStopping``'s. skorch's ``partial_fit`` swallows both; ``raise_if_interrupted`` raises
        the former again.
    anchor_ : list of (torch.nn.Parameter, torch.Tensor) or None
        Weights and the values they started from, set by ``fitting.train`` for the length of one fit:
        the training loss adds ``ANCHOR_WEIGHT`` times their squared distance from those values.

    A training pass whose loss is NaN or infinite on any batch, or that leaves non-finite weights,
    raises ``NonFiniteLossError`` at its end, out of ``partial_fit`` (skorch does not catch it), with
    the weights of the start of that pass put back and a fresh optimizer (AdamW's moments are
    non-finite by then); ``on_epoch_end`` never runs for that epoch, so no callback sees it.

    Notes
    -----
    A pickled net holds the weights, not the optimizer's state (AdamW's two moments per weight,
    twice the weights' size): an unpickled net gets a fresh optimizer, so training it further
    starts with fresh moments, as a new fit would (the weights and the history are kept). So does
    a ``copy.deepcopy`` of the net, which goes through the same ``__getstate__``. Nor does it hold
    the last fit's held-out texts: its ``train_split`` is None, and the next fit sets its own.
    """

    def __init__(self, *args, shuffle_seed=0, use_bf16=False, noise=0.0, noise_type="delete", word_dropout=0.0,
                 free_bits=0.0, kl_weight=1.0, task=None, reconstruction_weight=1.0, class_weight=None, vocabulary=None,
                 data_parallel=False, unused_parameters=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.shuffle_seed, self.use_bf16 = shuffle_seed, use_bf16
        self.noise, self.noise_type, self.word_dropout = noise, noise_type, word_dropout
        self.free_bits, self.kl_weight = free_bits, kl_weight
        self.task, self.reconstruction_weight, self.class_weight = task, reconstruction_weight, class_weight
        self.vocabulary = vocabulary
        self.data_parallel, self.unused_parameters = data_parallel, unused_parameters

    def initialize(self):
        self.shuffle_rng_ = np.random.default_rng(self.shuffle_seed)
        # With data_parallel, the noise of each process's share of a batch is its own draw, from a source of
        # its own: the batches' order (shuffle_rng_) must stay the same in every process.
        self.noise_rng_ = (np.random.default_rng([self.shuffle_seed, distributed_job.rank()]) if self.data_parallel
                           else self.shuffle_rng_)
        self.interrupted_ = False
        self.anchor_ = None
        return super().initialize()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.interrupted_ = False
        self.first_epoch_ = len(self.history)  # this call's epochs are history[first_epoch_:]
        if self.data_parallel:
            # Built from rank 0's weights (DistributedDataParallel broadcasts them), for the training passes
            # only: validation and inference call module_ itself, which every process holds alike. Kept out of
            # skorch's registry of modules (which saves, moves and reinitialises them): it is a view of
            # module_ for the training steps of this call, not a module of its own.
            device = torch.device(self.device)
            self.__dict__["parallel_module_"] = torch.nn.parallel.DistributedDataParallel(
                self.module_, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=self.unused_parameters)
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.leave_data_parallel()

    def leave_data_parallel(self):
        """Drop the ``DistributedDataParallel`` wrapper of a training call (it holds the process group, which
        neither pickles nor outlives the job); the module keeps its weights."""
        self.__dict__.pop("parallel_module_", None)

    @contextlib.contextmanager
    def noting_interrupts(self):
        """Note a ``KeyboardInterrupt`` raised inside (Ctrl-C) in ``interrupted_``, and let it go on:
        skorch's ``partial_fit`` stops training on it either way, but only a noted one is raised
        again by ``raise_if_interrupted``. For training work that never stops training on purpose."""
        try:
            yield
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise

    def raise_if_interrupted(self):
        """Raise ``KeyboardInterrupt`` again if the last ``partial_fit`` call was interrupted.

        skorch's ``partial_fit`` catches ``KeyboardInterrupt`` (its callbacks raise it to stop
        training), so a Ctrl-C during training would return as if the fit had finished. Call this
        right after ``partial_fit``: it logs (logger ``"sktextae"``) how many epochs completed and
        which weights the net keeps, then raises, so that the caller's program stops while an
        interactive session keeps a usable net. The weights kept are those of the best epoch so far
        when an ``EarlyStopping(load_best=True)`` callback has seen one (skorch restores them in
        ``on_train_end``), otherwise the weights as the interrupt left them: without a validation
        score no earlier epoch is known to be better, and the batches trained since are kept.
        The interrupted epoch stays in ``history`` as skorch left it, without its epoch-level scores.
        """
        if not getattr(self, "interrupted_", False):
            return
        complete = len(self.history) - getattr(self, "first_epoch_", 0) - 1  # the last epoch is the interrupted one
        stopper = next((callback for _, callback in self.callbacks_
                        if isinstance(callback, EarlyStopping) and callback.load_best
                        and callback.best_model_weights_ is not None), None)
        kept = (f"the weights of epoch {stopper.best_epoch_}, the best {stopper.monitor} so far" if stopper
                else "the weights as the interrupt left them")
        message = (f"fit interrupted in epoch {len(self.history)} after {complete} complete epoch(s) of this call "
                   f"(max_epochs={self.max_epochs}); the model keeps {kept} and can be used or trained further")
        logger.warning(message)
        raise KeyboardInterrupt(message)

    def __getstate__(self):
        # Left out of the pickle, from a copy so that self keeps them: the optimizer, which skorch pickles with
        # the module, and whose state (AdamW's moments) is twice the weights' size and of no use to a model
        # that is only used; and the last fit's held-out texts (train_split, with a frozen encoder's outputs
        # for them), which would make a model sent to workers grow with its training set.
        if ("optimizer_" not in self.__dict__ and self.train_split is None and "parallel_module_" not in self.__dict__
                and not self.__dict__.get("anchor_")):
            return super().__getstate__()
        weights_only = object.__new__(type(self))
        weights_only.__dict__.update(self.__dict__)
        weights_only.__dict__.pop("optimizer_", None)
        weights_only.__dict__.pop("parallel_module_", None)
        weights_only.anchor_ = None  # a fit's own, whose start values would double the weights' size
        weights_only.train_split = None  # a fit sets its own
        return super(AutoencoderNet, weights_only).__getstate__()

    def __setstate__(self, state):
        super().__setstate__(state)
        # Where skorch maps a CUDA net to the CPU (no GPU here, with a DeviceWarning), it sets device to a
        # torch.device; a string, as the net was built with.
        self.device = str(self.device) if isinstance(self.device, torch.device) else self.device
        if self.initialized_ and "optimizer_" not in self.__dict__:
            # A fresh optimizer over the unpickled weights, on the device skorch mapped them to; it holds
            # no tensors until its first step, when AdamW creates its moments.
            self.initialize_optimizer()

    def get_iterator(self, dataset, training=False):
        sampler = LengthBucketSampler(dataset.lengths, batch_size=self.batch_size, shuffle=training,
                                      rng=self.shuffle_rng_)
        # Padded to a few lengths (batching.ROUNDING_BITS), up to the dataset's longest text: buffers of a
        # few sizes fragment the CPU's heap less as the epoch goes on.
        options = dict(sequence_targets=self.module_.is_sequence_decoder, round_lengths=True,
                       max_text_length=int(dataset.lengths.max(initial=0)))
        if training:
            options.update(noise=self.noise, noise_type=self.noise_type, word_dropout=self.word_dropout,
                           rng=self.noise_rng_)
            if self.data_parallel:  # this process's share of every batch; validation passes see them all
                sampler = distributed_job.SplitBatches(sampler, rank=distributed_job.rank(),
                                                     world_size=distributed_job.world_size())
        collate = self.vocabulary.collator(**options)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                          pin_memory=is_cuda(self.device))

    def get_all_learnable_params(self):
        # A frozen encoder's weights (requires_grad=False) stay out of the optimizer.
        return ((name, param) for name, param in super().get_all_learnable_params() if param.requires_grad)

    def autocast(self):
        # The device, not use_bf16 alone: a net trained on CUDA and unpickled where there is none runs
        # on the CPU (skorch maps it there), where CUDA autocast would only warn at every call.
        if not self.use_bf16 or not is_cuda(self.device):
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def infer(self, x, **fit_params):
        # non_blocking: with pinned batches the copy overlaps the previous step's compute.
        x = {key: value.to(self.device, non_blocking=True) for key, value in x.items() if key != "labels"}
        module = self.module_
        if module.training and "parallel_module_" in self.__dict__:  # a data-parallel training step
            module = self.parallel_module_
        with self.autocast():
            return module(**x, **fit_params)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop, bookkeeping and notifications unchanged, except that skorch records
        # ``loss.item()`` after every batch: on CUDA that waits for the GPU to finish the step before
        # the next batch can be queued. Here every per-batch value stays a detached device tensor and
        # all of them become floats in one transfer at the end of the pass, before the on_epoch_end
        # callbacks (PassthroughScoring, EarlyStopping, PrintLog) read them. Until then a callback's
        # on_batch_end sees 0-d tensors (``callbacks.SyncFreeProgressBar`` shows no per-batch loss).
        # Unlike skorch's loop, each step's outputs are also freed before the next batch runs, and a
        # KeyboardInterrupt (Ctrl-C: nothing in a pass raises one on purpose) is noted, see
        # raise_if_interrupted.
        if iterator is None:
            return
        # The weights to go back to if this pass diverges: copied to the host as the pass starts. On CUDA
        # the copy goes to pinned memory without waiting: the stream runs it before the first step.
        last_good = _host_copy(self.module_) if training else None
        batch_count = 0
        try:
            with self.noting_interrupts():
                for batch in iterator:
                    self.notify("on_batch_begin", batch=batch, training=training)
                    step = step_fn(batch, **fit_params)
                    self.history.record_batch(f"{prefix}_loss", step["loss"].detach())
                    batch_size = get_len(batch[0]) if isinstance(batch, (tuple, list)) else get_len(batch)
                    self.history.record_batch(f"{prefix}_batch_size", batch_size)
                    self.notify("on_batch_end", batch=batch, training=training, **step)
                    # Drop this batch's outputs now: kept until the next step's result replaced them, its
                    # logits ((B, T, V) for a sequence decoder) would still be held, in memory beside the
                    # next batch's own, through the next forward and backward pass.
                    del step
                    batch_count += 1
        except BaseException:  # an interrupted fit (skorch catches KeyboardInterrupt) leaves floats too
            _batch_values_to_floats(self.history[-1]["batches"])
            raise
        if training and "parallel_module_" in self.__dict__:
            _average_across_processes(self.history[-1]["batches"])
        # Whether the weights are finite is read in the same transfer as the losses: no extra wait.
        finite = _all_finite(self.module_) if training else None
        finite = _batch_values_to_floats(self.history[-1]["batches"], extra=finite)
        self.history.record(f"{prefix}_batch_count", batch_count)
        if training:
            self._check_finite(last_good, weights_finite=bool(finite))

    def _check_finite(self, last_good, *, weights_finite):
        """Raise ``NonFiniteLossError`` if this epoch's training pass diverged (a loss, by now a host float,
        or the weights are not finite), after putting back the weights ``last_good`` (a ``_host_copy``
        from the start of the pass)."""
        losses = [record["train_loss"] for record in self.history[-1]["batches"]]
        bad = next((i for i, loss in enumerate(losses) if not np.isfinite(loss)), None)
        if bad is None and weights_finite:
            return
        _restore(self.module_, last_good)
        self.initialize_optimizer()  # AdamW's moments hold the non-finite values too
        epoch = len(self.history)
        kept = f"the end of epoch {epoch - 1}" if epoch > 1 else "the start of training, before the first step"
        if bad is None:
            what = f"the weights became non-finite in epoch {epoch} (every batch's loss was finite)"
        else:
            what = f"the training loss was {losses[bad]} in epoch {epoch}, batch {bad + 1} of {len(losses)}"
        fixes = [f"a lower lr (now {self.lr:g})"]
        if getattr(self, "optimizer__param_groups", None):  # a fine-tuned pretrained encoder
            fixes.append("a lower encoder_lr for the pretrained encoder's weights")
        if any("train_kl" in record for record in self.history[-1]["batches"][:1]):  # a variational model
            fixes.append("with variational=True the posterior's log-variance is exponentiated, so the lr matters "
                         "most there; variational=False has no such term")
        if self.use_bf16 and is_cuda(self.device):
            fixes.append("on CUDA the network runs under bf16 autocast, whose range is narrower: device='cpu' "
                         "trains in float32")
        raise NonFiniteLossError(
            f"{what}: training stopped, and the network keeps its weights of {kept}. Try " + "; ".join(fixes) + ".",
            epoch=epoch, batch=None if bad is None else bad + 1)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, kl, *head = y_pred  # kl: (B, latent_dim) per unit, or None; head: supervised outputs
        loss = self._reconstruction_loss(logits, kl, y_true, training=training)
        if head:
            labels = X["labels"].to(self.device, non_blocking=True)
            loss = self.reconstruction_weight * loss + self._supervised_loss(head[0].float(), labels)
        if training and getattr(self, "anchor_", None):
            # The L2-SP penalty (Li et al. 2018): training stays near a start worth keeping.
            # mse_loss keeps no (V, C) difference alive until the backward pass, as (weight - start).pow(2) would.
            loss = loss + ANCHOR_WEIGHT * sum(torch.nn.functional.mse_loss(weight, start, reduction="sum")
                                              for weight, start in self.anchor_)
        return loss

    def _supervised_loss(self, outputs, labels):
        if self.task == "classification":
            known = labels >= 0
            weight = None
            if self.class_weight is not None:
                # non_blocking: CUDA stages a copy from pageable memory at once, without waiting for the GPU.
                weight = torch.tensor(self.class_weight, dtype=outputs.dtype).to(outputs.device, non_blocking=True)
            losses = torch.nn.functional.cross_entropy(outputs, labels.clamp(min=0), weight=weight, reduction="none")
        else:
            known = ~torch.isnan(labels).any(dim=-1)  # (B,): targets are (B, n_outputs)
            losses = (outputs - torch.nan_to_num(labels)).pow(2).mean(dim=-1)
        return (losses * known).sum() / known.sum().clamp(min=1)  # 0 for a batch with no labels

    def _reconstruction_loss(self, logits, kl, y_true, *, training):
        target_ids = y_true.to(self.device, non_blocking=True)
        n_tokens = (target_ids != PAD_ID).sum().clamp(min=1)
        nll = -token_log_probs(logits, target_ids).sum()
        if kl is None:
            return nll / n_tokens
        prefix = "train" if training else "valid"
        # Device tensors until the end of the pass: see run_single_epoch.
        self.history.record_batch(f"{prefix}_reconstruction", (nll / n_tokens).detach())
        self.history.record_batch(f"{prefix}_kl", kl.sum(dim=1).mean().detach())  # nats per text
        if not training:
            return (nll + kl.sum()) / n_tokens  # the negative ELBO per token: comparable across epochs
        kl_floored = kl.mean(dim=0).clamp(min=self.free_bits).sum() * kl.shape[0]
        return (nll + self.kl_weight * kl_floored) / n_tokens


def _host_copy(module):
    """The trainable weights and the buffers of ``module``, copied to the host (frozen weights never change)."""
    cuda = any(value.is_cuda for value in module.state_dict().values())
    copy = {}
    for name, value in module.state_dict(keep_vars=True).items():
        if isinstance(value, torch.nn.Parameter) and not value.requires_grad:
            continue
        copy[name] = torch.empty(value.shape, dtype=value.dtype, pin_memory=cuda).copy_(value.detach(),
                                                                                       non_blocking=cuda)
    return copy


def _restore(module, copy):
    """Put the ``_host_copy`` ``copy`` back into the module's tensors, in place (the optimizer holds them)."""
    state = module.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, value in copy.items():
            state[name].copy_(value)


def _all_finite(module):
    """1.0 if every trainable floating-point weight of ``module`` is finite, else 0.0: a 0-d float32 tensor
    on the weights' device, computed there without waiting for it."""
    weights = [p for p in module.parameters() if p.requires_grad and p.is_floating_point()]
    if not weights:
        return None
    return torch.stack([torch.isfinite(p).all() for p in weights]).all().float()


def _average_across_processes(batches):
    """Replace each training batch's loss (and the other 0-d tensors a pass records) by its mean over the
    processes of a data-parallel job, and its batch size by their sum: one all-reduce per pass, and the
    same history in every process, so that the callbacks decide alike everywhere."""
    keys = [key for key, value in (batches[0].items() if batches else ())
            if isinstance(value, torch.Tensor) and value.dim() == 0]
    if not keys:
        return
    values = torch.stack([torch.stack([record[key].float() for key in keys]) for record in batches])  # (batches, keys)
    sizes = torch.tensor([record["train_batch_size"] for record in batches], dtype=torch.float64,
                         device=values.device)
    values = torch.cat([values.double(), sizes[:, None]], dim=1)
    torch.distributed.all_reduce(values)
    values[:, :-1] /= distributed_job.world_size()
    for record, row in zip(batches, values.tolist()):
        record.update(zip(keys, row[:-1]))
        record["train_batch_size"] = int(row[-1])


def _batch_values_to_floats(batches, extra=None):
    """Replace the 0-d tensors of a pass's batch records by Python numbers, the values ``.item()`` gives,
    in one transfer per device and dtype (one in all, as a rule: the losses are float32). ``extra``, a 0-d
    tensor (or None), rides along in the same transfer; its number (or 1.0 for None) is returned."""
    places = {}  # (device, dtype) -> [(record, key)]
    for record in batches:
        for key, value in record.items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                places.setdefault((value.device, value.dtype), []).append((record, key))
    holder = {"extra": 1.0 if extra is None else extra}
    if extra is not None:
        places.setdefault((extra.device, extra.dtype), []).append((holder, "extra"))
    for where in places.values():
        numbers = torch.stack([record[key] for record, key in where]).tolist()
        for (record, key), number in zip(where, numbers):
            record[key] = number
    return holder["extra"]
