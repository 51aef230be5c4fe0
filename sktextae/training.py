"""The skorch net that trains an autoencoder module: batching, device transfer, bf16 and the loss.

skorch's hooks are overridden (``get_iterator``, ``infer``, ``get_loss``), and ``run_single_epoch``
only so that the loop never waits for the device (see there); its ``fit`` loop, callbacks and
history are used as they are.
"""

import contextlib

import numpy as np
import torch
from skorch import NeuralNet
from skorch.dataset import get_len
from torch.utils.data import DataLoader

from .batching import LengthBucketSampler

# The padding id is also the target padding: no real target is ever PAD_ID.
from .tokenization import PAD_ID


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
    """

    def __init__(self, *args, shuffle_seed=0, use_bf16=False, noise=0.0, noise_type="delete", word_dropout=0.0,
                 free_bits=0.0, kl_weight=1.0, task=None, reconstruction_weight=1.0, class_weight=None, vocabulary=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.shuffle_seed, self.use_bf16 = shuffle_seed, use_bf16
        self.noise, self.noise_type, self.word_dropout = noise, noise_type, word_dropout
        self.free_bits, self.kl_weight = free_bits, kl_weight
        self.task, self.reconstruction_weight, self.class_weight = task, reconstruction_weight, class_weight
        self.vocabulary = vocabulary

    def initialize(self):
        self.shuffle_rng_ = np.random.default_rng(self.shuffle_seed)
        return super().initialize()

    def get_iterator(self, dataset, training=False):
        sampler = LengthBucketSampler(dataset.lengths, batch_size=self.batch_size, shuffle=training,
                                      rng=self.shuffle_rng_)
        collate = self.vocabulary.collator(sequence_targets=self.module_.is_sequence_decoder)
        if training:
            collate = self.vocabulary.collator(sequence_targets=self.module_.is_sequence_decoder, noise=self.noise,
                                               noise_type=self.noise_type, word_dropout=self.word_dropout,
                                               rng=self.shuffle_rng_)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                          pin_memory=torch.device(self.device).type == "cuda")

    def get_all_learnable_params(self):
        # A frozen encoder's weights (requires_grad=False) stay out of the optimizer.
        return ((name, param) for name, param in super().get_all_learnable_params() if param.requires_grad)

    def autocast(self):
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def infer(self, x, **fit_params):
        # non_blocking: with pinned batches the copy overlaps the previous step's compute.
        x = {key: value.to(self.device, non_blocking=True) for key, value in x.items() if key != "labels"}
        with self.autocast():
            return self.module_(**x, **fit_params)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop, bookkeeping and notifications unchanged, except that skorch records
        # ``loss.item()`` after every batch: on CUDA that waits for the GPU to finish the step before
        # the next batch can be queued. Here every per-batch value stays a detached device tensor and
        # all of them become floats in one transfer at the end of the pass, before the on_epoch_end
        # callbacks (PassthroughScoring, EarlyStopping, PrintLog) read them. Until then a callback's
        # on_batch_end sees 0-d tensors (``callbacks.SyncFreeProgressBar`` shows no per-batch loss).
        # Unlike skorch's loop, each step's outputs are also freed before the next batch runs.
        if iterator is None:
            return
        batch_count = 0
        try:
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
        finally:  # an interrupted fit (skorch catches KeyboardInterrupt) leaves floats too
            _batch_values_to_floats(self.history[-1]["batches"])
        self.history.record(f"{prefix}_batch_count", batch_count)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, kl, *head = y_pred  # kl: (B, latent_dim) per unit, or None; head: supervised outputs
        loss = self._reconstruction_loss(logits, kl, y_true, training=training)
        if not head:
            return loss
        labels = X["labels"].to(self.device, non_blocking=True)
        return self.reconstruction_weight * loss + self._supervised_loss(head[0].float(), labels)

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


def _batch_values_to_floats(batches):
    """Replace the 0-d tensors of a pass's batch records by Python numbers, the values ``.item()`` gives,
    in one transfer per device and dtype (one in all, as a rule: the losses are float32)."""
    places = {}  # (device, dtype) -> [(record, key)]
    for record in batches:
        for key, value in record.items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                places.setdefault((value.device, value.dtype), []).append((record, key))
    for where in places.values():
        numbers = torch.stack([record[key] for record, key in where]).tolist()
        for (record, key), number in zip(where, numbers):
            record[key] = number


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; any other torch device string is checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA GPU here: "
                         f"use device='auto' or 'cpu'.")
    return str(parsed)
