"""Training policies for variational models, and a progress bar that never waits for the device,
as skorch callbacks."""

import numpy as np
import torch
from skorch.callbacks import Callback, ProgressBar

from .inference import batched


class KLAnnealing(Callback):
    """Raise the net's ``kl_weight`` linearly from 0 to 1 over the first ``warmup_epochs`` epochs.

    The weight grows batch by batch; a decoder that first learns to use the latent vector is less
    likely to ignore it (posterior collapse) once the KL term weighs in fully (Bowman et al. 2016).
    ``warmup_epochs=0`` keeps the weight at 1. The weight of each epoch's last batch is recorded
    in the history as ``kl_weight``.
    """

    def __init__(self, warmup_epochs=5):
        self.warmup_epochs = warmup_epochs

    def initialize(self):
        self.steps_ = 0
        self.batches_per_epoch_ = 1
        return self

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        self.batches_per_epoch_ = max(1, -(-len(dataset_train) // net.batch_size))

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        self.steps_ += 1
        warmup_steps = self.warmup_epochs * self.batches_per_epoch_
        net.kl_weight = min(1.0, self.steps_ / warmup_steps) if warmup_steps else 1.0

    def on_epoch_end(self, net, **kwargs):
        net.history.record("kl_weight", net.kl_weight)


class ActiveUnits(Callback):
    """Record ``active_units``: latent units whose posterior mean varies across texts.

    A unit is active when the variance of its posterior mean over texts exceeds ``threshold``
    (Burda et al. 2016); a collapsed unit carries no information about the text. Measured each
    epoch on the validation texts, or on the first ``max_texts`` training texts when there are none.
    """

    def __init__(self, threshold=0.01, max_texts=2000):
        self.threshold, self.max_texts = threshold, max_texts

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        # A pass over up to max_texts texts every epoch: a Ctrl-C may well land here, and is noted as one
        # (``AutoencoderNet.raise_if_interrupted``), not taken for a callback's request to stop.
        with net.noting_interrupts():
            self._record(net, dataset_valid if dataset_valid is not None else dataset_train)

    def _record(self, net, dataset):
        texts = dataset.subset(np.arange(min(len(dataset), self.max_texts)))
        module = net.module_
        means = batched(net, texts, lambda inputs, _: module.encode(inputs.get("input_ids"), inputs.get("lengths"),
                                                                   inputs.get("encoder_hidden")),
                        batch_size=net.batch_size, one_transfer=True)
        variance = means.var(axis=0) if len(texts) > 1 else np.zeros(1)
        net.history.record("active_units", int((variance > self.threshold).sum()))


class SyncFreeProgressBar(ProgressBar):
    """skorch's ``ProgressBar``, without the per-batch read of values still on the device.

    ``AutoencoderNet`` keeps each batch's loss on the device until the epoch ends (see
    ``AutoencoderNet.run_single_epoch``); skorch's bar would print them after every batch, which waits
    for the GPU at every step. This one counts the batches and shows only values already on the host;
    the per-epoch log (``verbose``) shows the losses.
    """

    def _get_postfix_dict(self, net):
        return {key: value for key, value in super()._get_postfix_dict(net).items()
                if not isinstance(value, torch.Tensor)}
