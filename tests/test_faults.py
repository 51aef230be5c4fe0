"""What a fit survives: a Ctrl-C during training, a pickle moved to a machine without CUDA, and what a
pickle holds (the weights, not the optimizer's state)."""

import contextlib
import copy
import io
import logging
import pickle
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from skorch.exceptions import DeviceWarning

from sktextae.batching import TokenDataset
from sktextae.callbacks import ActiveUnits
from sktextae.tokenization import encode


class CtrlC(Callback):
    """A Ctrl-C after batch ``batch`` of epoch ``epoch``'s training pass, as the signal would raise it
    there; the weights at that moment are kept in ``weights``."""

    def __init__(self, epoch=2, batch=2):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1, "batches"]) == self.batch:
            self.weights = copy.deepcopy(net.module_.state_dict())
            raise KeyboardInterrupt


class EpochWeights(Callback):
    """Each completed epoch's weights, by epoch number."""

    def initialize(self):
        self.weights = {}
        return self

    def on_epoch_end(self, net, **kwargs):
        self.weights[len(net.history)] = copy.deepcopy(net.module_.state_dict())


def fit_interrupted(estimator, texts):
    """``estimator.fit(texts)``, which raises KeyboardInterrupt once the estimator calls
    ``net_.raise_if_interrupted()``, and returns it until then."""
    with contextlib.suppress(KeyboardInterrupt):
        estimator.fit(texts)
    return estimator


def assert_same_weights(state, expected):
    assert state.keys() == expected.keys()
    for name in state:
        torch.testing.assert_close(state[name], expected[name], rtol=0, atol=0, msg=name)


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_is_raised_again_logged_and_the_model_kept(tiny, texts, caplog):
    estimator = fit_interrupted(tiny(batch_size=4, max_epochs=5, callbacks=[("ctrl_c", CtrlC(epoch=2))]), texts)
    net = estimator.net_
    assert net.interrupted_ and len(net.history) == 2  # the interrupted epoch stays, as skorch left it
    with caplog.at_level(logging.WARNING, logger="sktextae"):
        with pytest.raises(KeyboardInterrupt, match=r"in epoch 2 after 1 complete epoch.*max_epochs=5.*as the "
                                                    r"interrupt left them"):
            net.raise_if_interrupted()
    # The last: an estimator that calls raise_if_interrupted itself has logged it once already.
    record = [record for record in caplog.records if record.name == "sktextae"][-1]
    assert record.levelno == logging.WARNING and "after 1 complete epoch" in record.getMessage()
    # No validation score, so no earlier epoch is known to be better: the batches trained are kept.
    assert_same_weights(net.module_.state_dict(), dict(net.callbacks_)["ctrl_c"].weights)
    Z = estimator.transform(texts)
    assert Z.shape == (len(texts), 8) and np.isfinite(Z).all()


def test_ctrl_c_keeps_the_best_weights_of_early_stopping(tiny, texts, caplog):
    callbacks = [("epochs", EpochWeights()), ("ctrl_c", CtrlC(epoch=4))]
    estimator = fit_interrupted(tiny(batch_size=4, max_epochs=8, validation_fraction=0.25, patience=8,
                                     callbacks=callbacks), texts)
    net = estimator.net_
    losses = net.history[:, "valid_loss"]
    assert len(losses) == 3  # the interrupted epoch has none
    best = int(np.argmin(losses)) + 1
    assert_same_weights(net.module_.state_dict(), dict(net.callbacks_)["epochs"].weights[best])
    with caplog.at_level(logging.WARNING, logger="sktextae"), pytest.raises(KeyboardInterrupt) as raised:
        net.raise_if_interrupted()
    assert f"the weights of epoch {best}, the best valid_loss so far" in str(raised.value)


def test_ctrl_c_in_the_validation_pass_and_in_active_units_is_noted(tiny, texts, monkeypatch):
    class CtrlCInValidation(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if not training:
                raise KeyboardInterrupt

    estimator = fit_interrupted(tiny(batch_size=4, validation_fraction=0.25,
                                     callbacks=[CtrlCInValidation()]), texts)
    assert estimator.net_.interrupted_ and len(estimator.net_.history) == 1

    def ctrl_c(self, net, dataset):
        raise KeyboardInterrupt

    monkeypatch.setattr(ActiveUnits, "_record", ctrl_c)
    estimator = fit_interrupted(tiny(variational=True, max_epochs=3), texts)
    assert estimator.net_.interrupted_ and len(estimator.net_.history) == 1


def test_a_callbacks_deliberate_stop_is_not_an_interrupt(tiny, texts):
    class StopAfterTwoEpochs(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise KeyboardInterrupt  # skorch's way to stop training, as EarlyStopping does

    estimator = tiny(batch_size=4, max_epochs=5, callbacks=[StopAfterTwoEpochs()]).fit(texts)
    assert len(estimator.net_.history) == 2 and not estimator.net_.interrupted_
    estimator.net_.raise_if_interrupted()  # returns


def test_training_on_after_a_ctrl_c_clears_it(tiny, texts):
    estimator = fit_interrupted(tiny(batch_size=4, max_epochs=3, callbacks=[CtrlC(epoch=1)]), texts)
    assert estimator.net_.interrupted_
    estimator.partial_fit(texts)  # the copied CtrlC fires only in epoch 1
    assert not estimator.net_.interrupted_ and len(estimator.net_.history) == 2
    estimator.net_.raise_if_interrupted()


# --------------------------------------------------------------------------- what a pickle holds


def _weights_bytes(module):
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return len(buffer.getvalue())


def test_a_pickle_holds_the_weights_not_the_optimizer_state(tiny, texts):
    estimator = tiny().fit(texts)
    moments = estimator.net_.optimizer_.state
    assert moments  # AdamW's exp_avg and exp_avg_sq: twice the weights
    size = len(pickle.dumps(estimator))
    assert size < 1.5 * _weights_bytes(estimator.net_.module_), size
    assert estimator.net_.optimizer_.state is moments  # pickling left the fitted model as it was


def test_training_on_after_unpickling_starts_with_a_fresh_optimizer(tiny, texts):
    estimator = tiny().fit(texts)
    loaded = pickle.loads(pickle.dumps(estimator))
    optimizer = loaded.net_.optimizer_
    assert isinstance(optimizer, torch.optim.AdamW) and not optimizer.state
    assert optimizer.param_groups[0]["lr"] == estimator.net_.optimizer_.param_groups[0]["lr"]
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == \
        {id(p) for p in loaded.net_.module_.parameters()}  # the unpickled weights, not copies
    before = copy.deepcopy(loaded.net_.module_.state_dict())
    loaded.partial_fit(texts)
    assert optimizer.state and loaded.net_.optimizer_ is optimizer
    assert any(not torch.equal(before[name], weight) for name, weight in loaded.net_.module_.state_dict().items())
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(estimator)).transform(texts), estimator.transform(texts))


# --------------------------------------------------------------------------- CUDA pickle, no CUDA here


def as_if_fitted_on_cuda(estimator):
    """What a fit on a CUDA GPU leaves that a fit on the CPU does not (the weights are pickled from the
    CPU either way: skorch maps them to the device it unpickles on)."""
    estimator.device_ = "cuda"
    estimator.net_.device = "cuda"
    estimator.net_.use_bf16 = True
    estimator.net_.optimizer__fused = True
    return estimator


def test_a_cuda_net_unpickled_without_cuda_runs_on_the_cpu(tiny, texts, monkeypatch):
    blob = pickle.dumps(as_if_fitted_on_cuda(tiny().fit(texts)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning, match="no CUDA devices"):
        loaded = pickle.loads(blob)
    net = loaded.net_
    assert net.device == "cpu" and next(net.module_.parameters()).device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CUDA autocast on the CPU would warn at every call
        Z = loaded.transform(texts)
        assert np.isfinite(Z).all() and np.isfinite(loaded.score(texts))
        # Training on, at the net's level: a fresh fused AdamW on the CPU.
        net.partial_fit(TokenDataset(encode(loaded.tokenizer_, texts, max_length=loaded.max_length_)[0]))
    assert len(net.history) == 2 + net.max_epochs and np.isfinite(net.history[-1, "train_loss"])
# --------------------------------------------------------------------------- warnings and pipelines

import inspect
import os
import subprocess
import sys

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from conftest import TINY_PARAMS
from sktextae import TextAutoencoderClassifier
from sktextae import TruncationWarning


def test_ctrl_c_stops_fit_and_partial_fit_and_the_model_stays_usable(tiny, texts, caplog):
    estimator = tiny(batch_size=4, max_epochs=5, callbacks=[("ctrl_c", CtrlC(epoch=2))])
    with caplog.at_level(logging.WARNING, logger="sktextae"):
        with pytest.raises(KeyboardInterrupt, match="in epoch 2 after 1 complete epoch"):
            estimator.fit(texts)
    assert any(record.name == "sktextae" for record in caplog.records)
    assert len(estimator.net_.history) == 2
    assert np.isfinite(estimator.transform(texts)).all()
    estimator.partial_fit(texts)  # the copied CtrlC fires in epoch 2 only: this is epoch 3
    assert len(estimator.net_.history) == 3
    estimator.set_params(callbacks=[CtrlC(epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(texts)  # a new fit: epoch 1 again


def test_ctrl_c_stops_a_pipeline(tiny, texts, labels):
    pipeline = Pipeline([("ae", tiny(batch_size=4, max_epochs=5, callbacks=[CtrlC(epoch=2)])),
                         ("classifier", LogisticRegression())])
    with pytest.raises(KeyboardInterrupt):
        pipeline.fit(texts, labels)
    assert not hasattr(pipeline.named_steps["classifier"], "coef_")  # the program stopped at the interrupt


def test_a_cuda_model_unpickled_without_cuda_trains_on_the_cpu(tiny, texts, monkeypatch):
    blob = pickle.dumps(as_if_fitted_on_cuda(tiny().fit(texts)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(blob)
    assert loaded.device_ == loaded.net_.device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = loaded.transform(texts)
        loaded.partial_fit(texts)  # was: RuntimeError "Torch not compiled with CUDA enabled" (fork_rng)
    assert len(loaded.net_.history) == 3 and not np.array_equal(before, loaded.transform(texts))


_LOAD_WITHOUT_CUDA = """
import pickle, sys, warnings
import numpy as np, torch
assert not torch.cuda.is_available()
warnings.simplefilter("ignore")
with open(sys.argv[1], "rb") as file:
    model = pickle.load(file)
texts = sys.argv[2:]
assert np.isfinite(model.transform(texts)).all()
model.partial_fit(texts)
print(model.device_, model.net_.device, next(model.net_.module_.parameters()).device, len(model.net_.history))
"""


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_fitted_on_cuda_loads_and_trains_on_where_there_is_no_gpu(tiny, texts, tmp_path):
    estimator = tiny(device="cuda").fit(texts)
    assert estimator.net_.use_bf16 == torch.cuda.is_bf16_supported()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(estimator))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_CUDA, str(path), *texts], env=env,
                          capture_output=True, text=True, timeout=300, cwd=os.path.dirname(__file__))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cpu", "cpu", "cpu", "3"]


# --------------------------------------------------------------------------- TruncationWarning


def _truncation_warnings(record):
    return [warning for warning in record if issubclass(warning.category, TruncationWarning)]


def _here():
    """The line that called this: where a warning about it should point."""
    return inspect.stack()[1].lineno


def test_truncation_is_reported_once_per_fit_at_the_callers_line(tiny, texts, labels):
    pipeline = Pipeline([("ae", tiny(max_length=4)), ("classifier", LogisticRegression())])
    with pytest.warns(TruncationWarning) as record:
        line = _here(); pipeline.fit(texts, labels)  # noqa: E702 (one line: the warning's)
    [warning] = _truncation_warnings(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    with pytest.warns(TruncationWarning) as record:
        line = _here(); tiny(max_length=4).fit_transform(texts)  # noqa: E702
    [warning] = _truncation_warnings(record)
    assert (warning.filename, warning.lineno) == (__file__, line)


def test_truncation_warnings_point_at_the_callers_line(tiny, texts, labels):
    estimator = tiny(max_length=4).fit(texts)
    classifier = TextAutoencoderClassifier(**{**TINY_PARAMS, "max_length": 4}).fit(texts, labels)
    pipeline = Pipeline([("ae", tiny(max_length=4)), ("classifier", LogisticRegression())]).fit(texts, labels)
    calls = {"transform": lambda: estimator.transform(texts),
             "pandas transform": lambda: tiny(max_length=4).fit(texts).set_output(transform="pandas").transform(texts),
             "score": lambda: estimator.score(texts),
             "score_samples": lambda: estimator.score_samples(texts),
             "predict": lambda: classifier.predict(texts),
             "predict_proba": lambda: classifier.predict_proba(texts),
             "pipeline predict": lambda: pipeline.predict(texts)}
    for name, call in calls.items():
        with pytest.warns(TruncationWarning) as record:
            call()
        warned = _truncation_warnings(record)
        assert warned and all(warning.filename == __file__ for warning in warned), (name, warned)


# --------------------------------------------------------------------------- a non-finite loss

from sktextae import NonFiniteLossError  # noqa: E402


class Poison(Callback):
    """Fill a weight with ``value`` before training batch ``batch`` of epoch ``epoch``: the loss of that batch
    is then NaN or infinite."""

    def __init__(self, epoch=2, batch=2, value=float("inf")):
        self.epoch, self.batch, self.value = epoch, batch, value

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1, "batches"]) == self.batch:  # its row is open
            with torch.no_grad():
                next(net.module_.parameters()).fill_(self.value)


def test_a_non_finite_loss_stops_fit_naming_the_epoch_and_keeps_the_last_good_weights(tiny, texts):
    estimator = tiny(batch_size=8, max_epochs=4, callbacks=[("epochs", EpochWeights()), ("poison", Poison())])
    with pytest.raises(NonFiniteLossError, match=r"^the training loss was (nan|inf) in epoch 2, batch 2 of 5: "
                                                 r"training stopped, and the network keeps its weights of the end "
                                                 r"of epoch 1\. Try a lower lr \(now 0\.003\)\.$") as raised:
        estimator.fit(texts)
    assert isinstance(raised.value, FloatingPointError) and (raised.value.epoch, raised.value.batch) == (2, 2)
    net = estimator.net_
    assert_same_weights(net.module_.state_dict(), dict(net.callbacks_)["epochs"].weights[1])
    assert "train_loss" not in net.history[-1]  # the bad epoch was never closed: no callback saw it
    assert not net.optimizer_.state  # a fresh optimizer: the old one's moments were not finite
    assert np.isfinite(estimator.transform(texts)).all()
    estimator.partial_fit(texts)  # epoch 3 (the poison strikes in epoch 2 only), from the last good weights
    assert np.isfinite(net.history[-1, "train_loss"])


def test_a_non_finite_loss_in_the_first_epoch_keeps_the_initial_weights(tiny, texts):
    class InitialWeights(Callback):
        def on_train_begin(self, net, **kwargs):
            self.weights = copy.deepcopy(net.module_.state_dict())

    estimator = tiny(batch_size=8, lr=1e30, callbacks=[("initial", InitialWeights())])
    with pytest.raises(NonFiniteLossError, match=r"in epoch 1, .*keeps its weights of the start of training, before "
                                                 r"the first step\. Try a lower lr \(now 1e\+30\)"):
        estimator.fit(texts)
    assert_same_weights(estimator.net_.module_.state_dict(), dict(estimator.net_.callbacks_)["initial"].weights)


def test_non_finite_weights_after_finite_losses_are_caught_too(tiny, texts):
    class PoisonAfterLastStep(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training and len(net.history) == 2 and len(net.history[-1, "batches"]) == 5:
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(float("nan"))

    estimator = tiny(batch_size=8, max_epochs=3, callbacks=[("epochs", EpochWeights()), PoisonAfterLastStep()])
    with pytest.raises(NonFiniteLossError, match=r"the weights became non-finite in epoch 2 \(every batch's loss was "
                                                 r"finite\)") as raised:
        estimator.fit(texts)
    assert raised.value.batch is None
    assert_same_weights(estimator.net_.module_.state_dict(), dict(estimator.net_.callbacks_)["epochs"].weights[1])


def test_the_message_names_the_fixes_that_apply(tiny, texts, labels):
    with pytest.raises(NonFiniteLossError, match="with variational=True the posterior's log-variance"):
        tiny(variational=True, callbacks=[Poison(epoch=1, batch=1)]).fit(texts)
    with pytest.raises(NonFiniteLossError, match="in epoch 2, batch 1 of 3"):
        TextAutoencoderClassifier(**TINY_PARAMS, callbacks=[Poison(epoch=2, batch=1)]).fit(texts, labels)
    estimator = tiny().fit(texts)
    before = copy.deepcopy(estimator.net_.module_.state_dict())
    estimator.net_.callbacks_.append(("poison", Poison(epoch=3, batch=1, value=float("nan"))))
    with pytest.raises(NonFiniteLossError, match="the training loss was nan in epoch 3, batch 1 of 3"):
        estimator.partial_fit(texts)  # as in fit: the weights of before the call kept
    assert_same_weights(estimator.net_.module_.state_dict(), before)
