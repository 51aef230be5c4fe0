"""Tests of the skorch net (``training.AutoencoderNet``): the training loop reads values from the
device once per pass, never once per batch, and still keeps skorch's history as skorch would."""

import contextlib
import os
import sys
import weakref

import numpy as np
import pytest
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.history import History

from conftest import TINY_PARAMS
from sktextae import TextAutoencoderClassifier
from sktextae.batching import TokenDataset
from sktextae.callbacks import SyncFreeProgressBar
from sktextae.tokenization import encode
from sktextae.training import ANCHOR_WEIGHT, AutoencoderNet, _batch_values_to_floats

# Tensor methods that read a value from the device (a host-device synchronisation on CUDA).
_READS = ("item", "tolist", "cpu", "__float__", "__int__", "__bool__", "__format__", "__repr__")
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def count_device_reads(monkeypatch):
    """Count the reads of a tensor's value made from outside torch itself.

    On a CPU every tensor is on the host; what is counted is what would wait for a GPU. torch's own
    reads of host-only values (the optimizer's CPU step counter, the DataLoader's seed) are left out.
    """
    calls = []

    def counting(name, original):
        def method(self, *args, **kwargs):
            if not sys._getframe(1).f_code.co_filename.startswith(_TORCH_DIR):
                calls.append(name)
            return original(self, *args, **kwargs)
        return method

    for name in _READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    return calls


@pytest.mark.parametrize("verbose", [0, 1])
@pytest.mark.parametrize("architecture", ["transformer", "gru", "lstm", "bow"])
def test_training_reads_the_device_once_per_pass_not_per_batch(architecture, verbose, tiny, texts, monkeypatch,
                                                               capsys):
    reads = count_device_reads(monkeypatch)
    counts = {}
    for batch_size in (2, 15):  # 15 and 2 training batches per epoch
        reads.clear()
        estimator = tiny(architecture=architecture, variational=True, batch_size=batch_size, max_epochs=3,
                         validation_fraction=0.25, verbose=verbose).fit(texts)
        assert len(estimator.net_.history[-1, "batches"]) == (15 + 5 if batch_size == 2 else 2 + 1)
        counts[batch_size] = len(reads)
    assert counts[2] == counts[15], reads
    # One read per pass (train, valid) and one for the active units, per epoch; the bag of words' LSA start
    # reads two host values, and its bottleneck's PCA start one, once per fit, before training.
    assert counts[2] <= 3 * 3 + (3 if architecture == "bow" else 0), reads


@pytest.mark.parametrize("variational", [False, True])
def test_history_is_the_one_skorch_keeps(variational, tiny, texts, monkeypatch):
    """Same values, as Python floats, as skorch's own run_single_epoch (which calls .item() per batch)."""
    params = dict(variational=variational, batch_size=4, max_epochs=3, validation_fraction=0.25, patience=2)
    ours = tiny(**params).fit(texts).net_.history
    with monkeypatch.context() as patch:
        patch.setattr(AutoencoderNet, "run_single_epoch", NeuralNet.run_single_epoch)
        skorchs = tiny(**params).fit(texts).net_.history
    assert len(ours) == len(skorchs) == 3
    keys = {"train_loss", "valid_loss", "train_batch_size", "valid_batch_size"}
    if variational:
        keys |= {"train_kl", "valid_kl", "train_reconstruction", "valid_reconstruction"}
    for epoch, skorch_epoch in zip(ours, skorchs):
        assert len(epoch["batches"]) == len(skorch_epoch["batches"]) == 8 + 3
        for batch, skorch_batch in zip(epoch["batches"], skorch_epoch["batches"]):
            assert set(batch) == set(skorch_batch)
            assert keys >= set(batch) and {"train_loss", "valid_loss"} & set(batch)
            for key, value in batch.items():
                assert type(value) is (int if key.endswith("batch_size") else float), (key, value)
                assert value == float(skorch_batch[key]), key  # skorch's loop leaves our own records as tensors
        for key in keys - {"train_batch_size", "valid_batch_size"}:
            assert isinstance(epoch[key], float) and np.isfinite(epoch[key])  # np.float64, as skorch averages
            assert epoch[key] == pytest.approx(float(skorch_epoch[key]), rel=1e-6)
        assert epoch["train_batch_count"] == 8 and epoch["valid_batch_count"] == 3


@pytest.mark.parametrize("architecture", ["transformer", "bow"])
def test_batch_outputs_are_freed_before_the_next_batch(architecture, tiny, texts):
    """No batch's logits are still held while the next batch runs (they would add to the peak memory)."""
    class WatchOutputs(Callback):
        def initialize(self):
            self.previous, self.checked = None, 0
            return self

        def on_batch_begin(self, net, **kwargs):
            if self.previous is not None:
                assert self.previous() is None, "the previous batch's logits are still alive"
                self.checked += 1

        def on_batch_end(self, net, y_pred=None, **kwargs):
            self.previous = weakref.ref(y_pred[0])  # the logits; a weak reference keeps nothing alive

    estimator = tiny(architecture=architecture, batch_size=4, max_epochs=2, validation_fraction=0.25,
                     callbacks=[("watch", WatchOutputs())]).fit(texts)
    watch = dict(estimator.net_.callbacks_)["watch"]  # the fitted copy
    assert watch.checked >= 2 * (8 + 3) - 1  # every batch but the first, training and validation


def test_batch_values_become_the_numbers_item_gives():
    record = {"loss": torch.tensor(1 / 3), "kl": torch.tensor(2 / 3, dtype=torch.bfloat16),
              "count": torch.tensor(7), "float": 0.25, "vector": torch.ones(2)}
    batches = [dict(record), dict(record)]
    _batch_values_to_floats(batches)
    for batch in batches:
        for key in ("loss", "kl", "count"):
            assert type(batch[key]) is type(record[key].item()) and batch[key] == record[key].item()
        assert batch["float"] == 0.25
        assert batch["vector"] is record["vector"]  # not a single value: left as it is


def test_interrupted_pass_leaves_floats(tiny, texts):
    class Interrupt(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if len(net.history[-1, "batches"]) == 3:
                raise KeyboardInterrupt  # skorch's partial_fit catches it and stops training

    estimator = tiny(batch_size=4, max_epochs=2, callbacks=[Interrupt()])
    with contextlib.suppress(KeyboardInterrupt):  # raised again once the estimator calls raise_if_interrupted
        estimator.fit(texts)
    batches = estimator.net_.history[-1, "batches"]
    assert len(batches) == 3 and all(type(batch["train_loss"]) is float for batch in batches)


def test_sync_free_progress_bar_shows_only_host_values():
    history = History()
    history.new_epoch()
    history.new_batch()
    history.record_batch("train_loss", torch.tensor(0.5))
    history.record_batch("valid_loss", 0.25)
    net = NeuralNet(torch.nn.Linear, criterion=torch.nn.MSELoss)
    net.history = history
    assert SyncFreeProgressBar()._get_postfix_dict(net) == {"valid_loss": 0.25}


# --------------------------------------------------------------------------- CUDA

class _FailOnSync(Callback):
    """Turns every host-device synchronisation inside a training or validation step into an error."""

    def on_batch_begin(self, net, **kwargs):
        torch.cuda.set_sync_debug_mode("error")

    def on_batch_end(self, net, **kwargs):
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
class TestCuda:
    @pytest.mark.parametrize("variational", [False, True])
    @pytest.mark.parametrize("architecture", ["transformer", "gru", "lstm", "bow"])
    def test_training_step_does_not_synchronise(self, architecture, variational, tiny, texts):
        try:
            estimator = tiny(architecture=architecture, variational=variational, device="cuda", batch_size=4,
                             validation_fraction=0.25, verbose=1, callbacks=[_FailOnSync()]).fit(texts)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert all(type(value) is float for value in estimator.net_.history[:, "train_loss"])

    @pytest.mark.parametrize("class_weight", [None, "balanced"])
    def test_supervised_training_step_does_not_synchronise(self, class_weight, texts, labels):
        labels = labels.copy()
        labels[::3] = -1  # unlabelled texts take the masked path of the loss
        params = {**TINY_PARAMS, "architecture": "transformer", "device": "cuda", "batch_size": 4,
                  "class_weight": class_weight, "callbacks": [_FailOnSync()]}
        try:
            TextAutoencoderClassifier(**params).fit(texts, labels)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_the_anchor_adds_its_penalty_to_the_training_loss_only(tiny, texts):
    estimator = tiny(architecture="bow", max_epochs=1).fit(texts)
    net, weight = estimator.net_, estimator.net_.module_.encoder.embedding.weight
    net.module_.eval()  # no dropout: the same outputs at every call
    dataset = TokenDataset(encode(estimator.tokenizer_, texts, max_length=estimator.max_length_)[0])
    X, y = unpack_data(next(iter(net.get_iterator(dataset))))

    def losses():
        with torch.no_grad():
            return {training: float(net.get_loss(net.infer(X), y, X=X, training=training)) for training in (True, False)}

    plain = losses()
    net.anchor_ = [(weight, weight.detach() + 0.5)]  # a squared distance of 0.25 per entry
    anchored = losses()
    assert anchored[False] == plain[False]
    assert anchored[True] == pytest.approx(plain[True] + ANCHOR_WEIGHT * 0.25 * weight.numel(), rel=1e-5)
