"""checkpoint_dir: a fit killed (SIGKILL) or interrupted (Ctrl-C) resumes from its last complete epoch and
ends as the uninterrupted fit does; a checkpoint of another fit, or a damaged one, is refused; what a killed
write leaves is ignored and cleaned up."""

import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from conftest import TINY_PARAMS
from sktextae import ModelFileError, TextAutoencoder, TextAutoencoderClassifier, load
from sktextae import checkpoint as checkpoints

# How close a resumed fit comes to the uninterrupted one. On the CPU, with every random state restored,
# it is exact (the difference measured is 0.0); the margin allows for a torch whose kernels reduce in
# another order from one process to the next.
TOLERANCE = 1e-5

# Noise, dropout, a validation split and early stopping: every random state and callback state matters.
PARAMS = {**TINY_PARAMS, "max_epochs": 5, "batch_size": 8, "noise": 0.3, "validation_fraction": 0.25,
          "patience": 3}


class CtrlC(Callback):
    """A Ctrl-C after the first training batch of epoch ``epoch``, as the signal would raise it there."""

    def __init__(self, epoch=3):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            raise KeyboardInterrupt


class EpochsTrained(Callback):
    """Counts the epochs that a fit trains (not those it resumes)."""

    def initialize(self):
        self.epochs = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.epochs += 1


def interrupted(estimator, X, y=None, *, epoch=3):
    """``estimator`` after a fit that a Ctrl-C stopped in epoch ``epoch``, its callbacks then reset."""
    callbacks = estimator.callbacks
    estimator.set_params(callbacks=[*(callbacks or []), CtrlC(epoch)])
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, *([] if y is None else [y]))
    return estimator.set_params(callbacks=callbacks)


def latest(directory):
    return (pathlib.Path(directory) / checkpoints.LATEST).read_text().strip()


def assert_same_fit(resumed, expected, texts):
    assert len(resumed.net_.history) == len(expected.net_.history)
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(resumed.net_.history[:, key], expected.net_.history[:, key], rtol=0,
                                   atol=TOLERANCE)
    state, reference = resumed.net_.module_.state_dict(), expected.net_.module_.state_dict()
    assert state.keys() == reference.keys()
    for name in state:
        torch.testing.assert_close(state[name], reference[name], rtol=0, atol=TOLERANCE, msg=name)
    np.testing.assert_allclose(resumed.transform(texts), expected.transform(texts), rtol=0, atol=TOLERANCE)


# --------------------------------------------------------------------------- a killed process

_TRAIN_UNTIL_KILLED = """
import json, sys, time
import torch
torch.set_num_threads(1)
from skorch.callbacks import Callback
from sktextae import TextAutoencoder
from sktextae import checkpoint

params, texts, where = json.loads(open(sys.argv[1], encoding="utf-8").read())


def wait_to_be_killed():
    print("ready", flush=True)
    time.sleep(600)


class WaitInEpoch3(Callback):
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 3:  # epoch 2's checkpoint is written; epoch 3 has taken a step
            wait_to_be_killed()


if where == "writing":  # killed while writing epoch 3's checkpoint, its files half written, LATEST unchanged
    fsync = checkpoint._fsync

    def slow_fsync(path):
        if ".writing-0003" in str(path):
            wait_to_be_killed()
        fsync(path)

    checkpoint._fsync = slow_fsync
callbacks = [WaitInEpoch3()] if where == "epoch" else None
TextAutoencoder(**params, callbacks=callbacks).fit(texts)
"""


def train_until_killed(tmp_path, params, texts, where):
    """Fit in another process, SIGKILLed where ``where`` says: in epoch 3, or while writing its checkpoint."""
    script, arguments = tmp_path / "train.py", tmp_path / "arguments.json"
    script.write_text(_TRAIN_UNTIL_KILLED, encoding="utf-8")
    arguments.write_text(json.dumps([params, texts, where]), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), str(arguments)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               cwd=os.path.dirname(__file__))
    watchdog = threading.Timer(300, process.kill)  # never wait forever on a process that went wrong
    watchdog.start()
    try:
        line = process.stdout.readline()
        assert line == "ready\n", process.communicate()[1]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        watchdog.cancel()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("where", ["epoch", "writing"])
def test_a_fit_killed_in_its_third_epoch_resumes_as_if_never_killed(where, texts, tmp_path):
    directory = tmp_path / "checkpoints"
    train_until_killed(tmp_path, {**PARAMS, "checkpoint_dir": str(directory)}, texts, where)
    assert latest(directory) == "epoch-0002"
    leftovers = [path.name for path in directory.iterdir() if path.name.startswith(".writing-")]
    assert len(leftovers) == (1 if where == "writing" else 0)

    counter = EpochsTrained()
    resumed = TextAutoencoder(**PARAMS, checkpoint_dir=directory, callbacks=[("counter", counter)]).fit(texts)
    assert dict(resumed.net_.callbacks_)["counter"].epochs == len(resumed.net_.history) - 2  # epochs 1-2 skipped
    assert_same_fit(resumed, TextAutoencoder(**PARAMS).fit(texts), texts)
    assert not directory.exists()  # a finished fit leaves nothing to resume


# --------------------------------------------------------------------------- Ctrl-C, then fit again

RESUMED_FITS = {
    "early stopping": (TextAutoencoder, {**PARAMS, "max_epochs": 12, "patience": 2, "lr": 0.1}),
    "variational": (TextAutoencoder, {**PARAMS, "variational": True, "kl_annealing_epochs": 3}),
    "classifier": (TextAutoencoderClassifier, PARAMS),
}


@pytest.mark.parametrize("case", RESUMED_FITS)
def test_a_fit_stopped_by_ctrl_c_resumes_as_if_never_stopped(case, texts, labels, tmp_path):
    cls, params = RESUMED_FITS[case]
    y = labels if cls is TextAutoencoderClassifier else None
    estimator = interrupted(cls(**params, checkpoint_dir=tmp_path / "ckpt"), texts, y)
    assert latest(tmp_path / "ckpt") == "epoch-0002"
    resumed = estimator.fit(texts, y)
    expected = cls(**params).fit(texts, y)
    assert_same_fit(resumed, expected, texts)
    if case == "early stopping":
        assert len(expected.net_.history) < params["max_epochs"]  # it stopped early, after the resume
    if case == "classifier":
        np.testing.assert_array_equal(resumed.predict_proba(texts), expected.predict_proba(texts))


def test_a_checkpoint_of_the_last_epoch_returns_the_finished_fit(texts, tmp_path, monkeypatch):
    # Killed after its last epoch's checkpoint, before removing it: the next fit trains no epoch, and ends
    # as the uninterrupted one did (early stopping's best weights, which are not the last epoch's, put back).
    params = {**PARAMS, "max_epochs": 5, "lr": 0.1, "patience": 2}
    monkeypatch.setattr(checkpoints, "remove", lambda directory: None)
    expected = TextAutoencoder(**params, checkpoint_dir=tmp_path).fit(texts)
    assert latest(tmp_path) == "epoch-0005"
    stopper = dict(expected.net_.callbacks_)["early_stopping"]
    assert stopper.best_epoch_ < 5 and any(name.startswith("best-") for name in os.listdir(tmp_path / "epoch-0005"))
    counter = EpochsTrained()
    resumed = TextAutoencoder(**params, checkpoint_dir=tmp_path, callbacks=[("counter", counter)]).fit(texts)
    assert dict(resumed.net_.callbacks_)["counter"].epochs == 0
    assert dict(resumed.net_.callbacks_)["early_stopping"].best_epoch_ == stopper.best_epoch_
    assert_same_fit(resumed, expected, texts)


def test_more_epochs_train_on_from_the_checkpoint_fewer_are_refused(texts, tmp_path):
    estimator = interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts, epoch=4)
    with pytest.raises(ValueError, match=r"has trained 3 epochs, more than max_epochs=2: set max_epochs >= 3"):
        estimator.set_params(max_epochs=2).fit(texts)
    resumed = estimator.set_params(max_epochs=7).fit(texts)
    assert_same_fit(resumed, TextAutoencoder(**{**PARAMS, "max_epochs": 7}).fit(texts), texts)


# --------------------------------------------------------------------------- another fit's checkpoint


def test_a_checkpoint_of_other_parameters_or_texts_is_refused_and_kept(texts, labels, tmp_path):
    interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=r"holds a checkpoint of another fit: lr='auto' there, 0.002 here\. .*set them "
                                         r"back to resume it, pass another checkpoint_dir, or delete"):
        TextAutoencoder(**{**PARAMS, "lr": 2e-3}, checkpoint_dir=tmp_path).fit(texts)
    with pytest.raises(ValueError, match=r"the training data \(40 texts there, 39 here"):
        TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path).fit(texts[1:])
    with pytest.raises(ValueError, match=r"the training data \(40 texts there, 40 here"):
        TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path).fit(texts[::-1])
    with pytest.raises(ValueError, match="holds a checkpoint of another fit"):  # another class: other parameters
        TextAutoencoderClassifier(**PARAMS, checkpoint_dir=tmp_path).fit(texts, labels)
    assert sorted(os.listdir(tmp_path)) == before
    # What does not change the model is not compared: these resume.
    TextAutoencoder(**PARAMS, checkpoint_dir=str(tmp_path), inference_batch_size=7, verbose=0).fit(texts)
    assert not tmp_path.exists()


def test_the_labels_are_part_of_the_fingerprint(texts, labels, tmp_path):
    interrupted(TextAutoencoderClassifier(**PARAMS, checkpoint_dir=tmp_path), texts, labels)
    with pytest.raises(ValueError, match="the training data"):
        TextAutoencoderClassifier(**PARAMS, checkpoint_dir=tmp_path).fit(texts, 1 - labels)
    # Other names in the same order (0 -> "cooking", 1 -> "tech") train the same network: it resumes.
    named = np.where(labels == 0, "cooking", "tech")
    resumed = TextAutoencoderClassifier(**PARAMS, checkpoint_dir=tmp_path).fit(texts, named)
    assert resumed.classes_.tolist() == ["cooking", "tech"] and not tmp_path.exists()


# --------------------------------------------------------------------------- damage and leftovers


def _flip_a_byte(folder):
    file = folder / checkpoints.PARAMS
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    return file


def _write(relative, text):
    def damage(folder):
        file = folder / relative
        file.write_text(text)
        return file
    return damage


def _delete(name):
    def damage(folder):
        (folder / name).unlink()
        return folder / name
    return damage


# How each kind of damage is done to the latest checkpoint's folder (returning the file it damaged), and
# what the error then says.
DAMAGE = {
    "weights": (_flip_a_byte, r"params\.pt: damaged since it was written"),
    "manifest": (_write(checkpoints.MANIFEST, "{not json"), r"manifest\.json: not JSON"),
    "manifest fields": (_write(checkpoints.MANIFEST, "[]"), r"manifest\.json: not a checkpoint manifest"),
    "no manifest": (_delete(checkpoints.MANIFEST), r"manifest\.json: missing"),
    "missing file": (_delete(checkpoints.OPTIMIZER), r"optimizer\.pt: missing"),
    "pointer": (_write(f"../{checkpoints.LATEST}", "epoch-0009"),
                r"LATEST: names no checkpoint folder here \('epoch-0009'\)"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_checkpoint_raises_model_file_error_naming_the_file(case, texts, tmp_path):
    estimator = interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts)
    damage, message = DAMAGE[case]
    file = damage(tmp_path / latest(tmp_path)).resolve()
    with pytest.raises(ModelFileError, match=message) as raised:
        estimator.fit(texts)
    assert str(file) in str(raised.value)
    assert f"delete {tmp_path} to start afresh".lower() in str(raised.value).lower()


def test_what_a_killed_write_leaves_is_ignored_then_removed(texts, tmp_path):
    estimator = interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts)
    half_written = tmp_path / ".writing-0003-0badf00d"
    half_written.mkdir()
    (half_written / checkpoints.PARAMS).write_bytes(b"\0" * 10)
    unnamed = tmp_path / "epoch-0003"  # renamed into place, but the process died before LATEST named it
    unnamed.mkdir()
    (unnamed / checkpoints.PARAMS).write_bytes(b"\0" * 10)
    (tmp_path / "notes.txt").write_text("the user's own file")
    estimator = interrupted(estimator, texts, epoch=5)  # resumes from epoch 2, stopped again in epoch 5
    assert sorted(os.listdir(tmp_path)) == ["LATEST", "epoch-0004", "notes.txt"]
    assert_same_fit(estimator.fit(texts), TextAutoencoder(**PARAMS).fit(texts), texts)
    assert os.listdir(tmp_path) == ["notes.txt"]  # a folder not left empty is kept, with what is not ours


def test_a_non_finite_loss_keeps_the_last_good_checkpoint(texts, tmp_path):
    class PoisonEpoch3(Callback):
        def on_batch_begin(self, net, training=False, **kwargs):
            if training and len(net.history) == 3:
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(float("inf"))

    with pytest.raises(FloatingPointError, match="in epoch 3, batch 1 of"):
        TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path, callbacks=[PoisonEpoch3()]).fit(texts)
    assert sorted(os.listdir(tmp_path)) == ["LATEST", "epoch-0002"]
    with open(tmp_path / "epoch-0002" / checkpoints.HISTORY, encoding="utf-8") as handle:
        assert len(json.load(handle)) == 2


# --------------------------------------------------------------------------- the parameter


def test_checkpoint_dir_is_a_plain_parameter(texts, tmp_path):
    estimator = TextAutoencoder(**TINY_PARAMS, checkpoint_dir=tmp_path / "ckpt")
    assert estimator.get_params()["checkpoint_dir"] == tmp_path / "ckpt"
    assert clone(estimator).checkpoint_dir == tmp_path / "ckpt"
    assert TextAutoencoderClassifier().get_params()["checkpoint_dir"] is None
    estimator.fit(texts)
    assert not (tmp_path / "ckpt").exists()
    loaded = pickle.loads(pickle.dumps(estimator))
    assert loaded.checkpoint_dir == tmp_path / "ckpt"
    np.testing.assert_array_equal(loaded.transform(texts), estimator.transform(texts))
    saved = load(estimator.save(tmp_path / "model"))  # a pathlib.Path is stored as its str
    assert saved.checkpoint_dir == str(tmp_path / "ckpt")
    np.testing.assert_array_equal(saved.transform(texts), estimator.transform(texts))
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        TextAutoencoder(**TINY_PARAMS, checkpoint_dir=3).fit(texts)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"checkpoint_dir=.*file' is a file: pass a folder"):
        TextAutoencoder(**TINY_PARAMS, checkpoint_dir=tmp_path / "file").fit(texts)


def test_partial_fit_neither_reads_nor_writes_checkpoints(texts, tmp_path):
    estimator = TextAutoencoder(**TINY_PARAMS, checkpoint_dir=tmp_path / "ckpt").partial_fit(texts)
    estimator.partial_fit(texts)
    assert len(estimator.net_.history) == 2 and not (tmp_path / "ckpt").exists()
    interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path / "other"), texts)
    before = sorted(os.listdir(tmp_path / "other"))
    TextAutoencoder(**{**PARAMS, "lr": 5e-3}, checkpoint_dir=tmp_path / "other").partial_fit(texts)  # not compared
    assert sorted(os.listdir(tmp_path / "other")) == before
