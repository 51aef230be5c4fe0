"""checkpoint_dir: a fit killed (SIGKILL) or interrupted (Ctrl-C) resumes from its last complete epoch and
ends as the uninterrupted fit does; a checkpoint of another fit, or a damaged or crafted one, is refused; what
a killed write leaves is ignored and cleaned up, and nothing else in the folder is ever touched; a folder in
use by another fit, one that cannot be created, or a full disk gives a clear error."""

import errno
import json
import os
import pathlib
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sktextae._sklearn_private import InvalidParameterError
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


def written(directory):
    """The folders that the index of ``directory`` lists as the package's."""
    return json.loads((pathlib.Path(directory) / checkpoints.INDEX).read_text())["written"]


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
from sktextae import files

params, texts, where = json.loads(open(sys.argv[1], encoding="utf-8").read())


def wait_to_be_killed():
    print("ready", flush=True)
    time.sleep(600)


class WaitInEpoch3(Callback):
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 3:  # epoch 2's checkpoint is written; epoch 3 has taken a step
            wait_to_be_killed()


if where == "writing":  # killed while writing epoch 3's checkpoint, its files half written, LATEST unchanged
    fsync = files.fsync

    def slow_fsync(path):
        if ".epoch-0003." in str(path):  # the temporary folder of sktextae.files.atomic_folder
            wait_to_be_killed()
        fsync(path)

    files.fsync = slow_fsync
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
    leftovers = [path.name for path in directory.iterdir() if path.name.endswith(".partial")]
    assert len(leftovers) == (1 if where == "writing" else 0)
    if where == "writing":  # listed in the index before it was created: known to be ours
        assert leftovers[0].startswith(".epoch-0003.") and "epoch-0003" in written(directory)

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
    # Held near its LSA start throughout: the resumed fit must hold the same start.
    "bag of words": (TextAutoencoder, {**PARAMS, "architecture": "bow", "lr": 0.03}),
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
    # A process killed while writing epoch 3 leaves the name in the index (listed before the folder is
    # created), and its half-written temporary folder, or the complete folder that LATEST does not name yet.
    index = tmp_path / checkpoints.INDEX
    index.write_text(json.dumps({"format_version": 1, "written": [*written(tmp_path), "epoch-0003"]}))
    half_written = tmp_path / ".epoch-0003.0badf00d.partial"
    half_written.mkdir()
    (half_written / checkpoints.PARAMS).write_bytes(b"\0" * 10)
    unnamed = tmp_path / "epoch-0003"
    unnamed.mkdir()
    (unnamed / checkpoints.PARAMS).write_bytes(b"\0" * 10)
    (tmp_path / "notes.txt").write_text("the user's own file")
    estimator = interrupted(estimator, texts, epoch=5)  # resumes from epoch 2, stopped again in epoch 5
    assert sorted(os.listdir(tmp_path)) == [checkpoints.INDEX, "LATEST", "epoch-0004", "notes.txt"]
    assert written(tmp_path) == ["epoch-0004"]
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
    assert sorted(os.listdir(tmp_path)) == [checkpoints.INDEX, "LATEST", "epoch-0002"]
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


# --------------------------------------------------------------------------- the user's own folders


def _users_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text(f"the user's {path.name}")
    return path


def _contents(folder):
    return {str(file.relative_to(folder)): file.read_bytes() for file in sorted(folder.rglob("*")) if file.is_file()}


def test_the_users_own_folders_survive_a_fit_a_resume_and_the_cleanup(texts, tmp_path):
    # Named as the package names its checkpoints (and its temporary folders, before): the user's all the same.
    users = [_users_folder(tmp_path / name) for name in ("epoch-0001", "epoch-0003", ".writing-0002-0badf00d")]
    estimator = interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts, epoch=2)
    assert re.fullmatch(r"epoch-0001-[0-9a-f]{8}", latest(tmp_path))  # written beside the user's epoch-0001
    # The user's copy of a checkpoint of this very fit, named as the next one would be: not the package's.
    copy = shutil.copytree(tmp_path / latest(tmp_path), tmp_path / "epoch-0004")
    users.append(copy)
    before = {folder.name: _contents(folder) for folder in users}
    estimator = interrupted(estimator, texts, epoch=5)  # resumes from epoch 1, stopped again in epoch 5
    assert re.fullmatch(r"epoch-0004-[0-9a-f]{8}", latest(tmp_path))
    assert_same_fit(estimator.fit(texts), TextAutoencoder(**PARAMS).fit(texts), texts)
    assert sorted(os.listdir(tmp_path)) == sorted(folder.name for folder in users)
    assert {folder.name: _contents(folder) for folder in users} == before


def test_a_checkpoint_dir_written_before_the_index_is_resumed_and_only_its_checkpoints_removed(texts, tmp_path):
    estimator = interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path), texts)
    (tmp_path / checkpoints.INDEX).unlink(missing_ok=True)  # as the first writer left it: LATEST and epoch-0002
    # A complete checkpoint of this fit that LATEST did not name yet when its process was killed ...
    unnamed = shutil.copytree(tmp_path / "epoch-0002", tmp_path / "epoch-0003")
    manifest = json.loads((unnamed / checkpoints.MANIFEST).read_text())
    (unnamed / checkpoints.MANIFEST).write_text(json.dumps({**manifest, "epochs": 3}))
    # ... and what is not this fit's: a user's folder, and what the old writer may have left, unverifiable.
    users = [_users_folder(tmp_path / "epoch-0005"), _users_folder(tmp_path / ".writing-0003-0badf00d")]
    assert_same_fit(estimator.fit(texts), TextAutoencoder(**PARAMS).fit(texts), texts)
    assert sorted(os.listdir(tmp_path)) == sorted(folder.name for folder in users)


# --------------------------------------------------------------------------- two fits, one folder

_HOLD_THE_FOLDER = """
import json, os, sys, time
import torch
torch.set_num_threads(1)
from skorch.callbacks import Callback
from sktextae import TextAutoencoder

params, texts, go = json.loads(open(sys.argv[1], encoding="utf-8").read())


class WaitInEpoch2(Callback):  # epoch 1's checkpoint is written
    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == 2 and not os.path.exists(go):
            print("ready", flush=True)
            deadline = time.monotonic() + 300
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.05)


TextAutoencoder(**params, callbacks=[WaitInEpoch2()]).fit(texts)
"""


def test_a_second_fit_on_a_folder_in_use_is_refused_naming_the_process(texts, tmp_path):
    directory, go = tmp_path / "ckpt", tmp_path / "go"
    script, arguments = tmp_path / "hold.py", tmp_path / "arguments.json"
    script.write_text(_HOLD_THE_FOLDER, encoding="utf-8")
    arguments.write_text(json.dumps([{**PARAMS, "checkpoint_dir": str(directory)}, texts, str(go)]), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), str(arguments)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               cwd=os.path.dirname(__file__))
    try:
        line = process.stdout.readline()
        assert line == "ready\n", process.communicate(timeout=300)[1]
        before = _contents(directory)
        with pytest.raises(ValueError, match=rf"checkpoint_dir='{re.escape(str(directory))}' is in use by process "
                                             rf"{process.pid} \(another fit\): two fits cannot share"):
            TextAutoencoder(**PARAMS, checkpoint_dir=directory).fit(texts)
        assert _contents(directory) == before  # the refused fit touched nothing
        go.touch()
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert not directory.exists()  # the first fit finished, and its lock ended with it
    TextAutoencoder(**{**PARAMS, "max_epochs": 1}, checkpoint_dir=directory).fit(texts)


def test_a_fit_in_another_thread_holds_the_folder_until_it_ends(texts, tmp_path):
    inside, go = threading.Event(), threading.Event()

    class WaitInEpoch1(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training and not go.is_set():
                inside.set()
                go.wait(300)

    def fit():
        fits.append(TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path / "ckpt", callbacks=[WaitInEpoch1()]).fit(texts))

    fits = []
    thread = threading.Thread(target=fit)
    thread.start()
    try:
        assert inside.wait(300)
        with pytest.raises(ValueError, match=rf"is in use by process {os.getpid()} \(another fit in this process\)"):
            TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path / "ckpt").fit(texts)
    finally:
        go.set()
        thread.join(300)
    assert len(fits) == 1 and not (tmp_path / "ckpt").exists()


def test_a_fit_that_failed_before_training_does_not_keep_the_folder_locked(texts, tmp_path):
    class FailsToStart(Callback):
        def initialize(self):
            raise RuntimeError("a callback that cannot start")

    directory = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="cannot start") as failed:
        TextAutoencoder(**PARAMS, checkpoint_dir=directory, callbacks=[FailsToStart()]).fit(texts)
    # failed's traceback still holds the failed fit's frames, and with them the lock it took.
    TextAutoencoder(**{**PARAMS, "max_epochs": 1}, checkpoint_dir=directory).fit(texts)
    assert failed.value is not None and not directory.exists()


# --------------------------------------------------------------------------- crafted manifests


@pytest.fixture(scope="module")
def saved_checkpoint(corpus, tmp_path_factory):
    """A checkpoint folder left by a fit stopped in epoch 3 (``LATEST`` names epoch-0002), to copy."""
    directory = tmp_path_factory.mktemp("saved") / "ckpt"
    interrupted(TextAutoencoder(**PARAMS, checkpoint_dir=directory), list(corpus))
    return directory


def _set(path, value):
    """Set the manifest field at ``path`` (keys and indices) to ``value``."""
    def edit(manifest, folder):
        *parents, last = path
        target = manifest
        for key in parents:
            target = target[key]
        target[last] = value
    return edit


def _deep(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def _bad_random_states(manifest, folder):
    torch.save({"cpu": torch.zeros(3, dtype=torch.uint8), "cuda": None}, folder / checkpoints.RANDOM)
    manifest["files"][checkpoints.RANDOM] = checkpoints.file_sha256(folder / checkpoints.RANDOM)


def _unknown_field(manifest, folder):
    manifest["comment"] = "added by hand"


def _file_outside(manifest, folder):
    manifest["files"]["../LATEST"] = "0" * 64


# How a manifest is crafted, and the field (and problem) that the error names.
CRAFTED = {
    "nested thousands deep": (None, r"not JSON that sktextae writes \(nested too deeply\)"),
    "a parameter nested deep": (_set(["fingerprint", "config", "lr"], _deep(40)),
                                r"field fingerprint\.config\.lr is nested more than 32 deep"),
    "epochs < 1": (_set(["epochs"], -5), r"field epochs must be an integer from 1 to"),
    "epochs not the folder's": (_set(["epochs"], 1),
                                r"field epochs is 1, but the folder 'epoch-0002' holds the checkpoint of epoch 2"),
    "an unknown field": (_unknown_field, r"field comment is not one a checkpoint holds"),
    "a file outside the folder": (_file_outside, r"field files\.\.\./LATEST is not a file a checkpoint holds"),
    "fit_rng cut short": (_set(["state", "fit_rng"], ["MT19937"]), r"field state\.fit_rng must be a RandomState's"),
    "fit_rng key of 623": (_set(["state", "fit_rng", 1], [1] * 623),
                           r"field state\.fit_rng\[1\] must be MT19937's key of 624 integers"),
    "fit_rng key word": (_set(["state", "fit_rng", 1, 7], 2**32),
                         r"field state\.fit_rng\[1\] must be an integer from 0 to 4294967295"),
    "fit_rng position": (_set(["state", "fit_rng", 2], 625),
                         r"field state\.fit_rng\[2\] must be an integer from 0 to 624"),
    "shuffle_rng without state": (_set(["state", "shuffle_rng"], {"bit_generator": "PCG64"}),
                                  r"field state\.shuffle_rng lacks state, has_uint32, uinteger"),
    "shuffle_rng increment": (_set(["state", "shuffle_rng", "state", "inc"], "1"),
                              r"field state\.shuffle_rng\.state\.inc must be an integer"),
    "shuffle_rng generator": (_set(["state", "shuffle_rng", "bit_generator"], "MT19937"),
                              r"field state\.shuffle_rng\.bit_generator must be 'PCG64'"),
    "kl_weight": (_set(["state", "kl_weight"], "1"), r"field state\.kl_weight must be a finite number >= 0"),
    "a callback's state": (_set(["state", "callbacks", "early_stopping", "misses_"], "many"),
                           r"field state\.callbacks\.early_stopping\.misses_ must be an integer"),
    "best weights elsewhere": (_set(["state", "callbacks", "early_stopping", "best_weights"], "../params.pt"),
                               r"field state\.callbacks\.early_stopping\.best_weights must be null"),
    "random states": (_bad_random_states, r"random\.pt: field cpu: not torch's CPU random state"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_manifest_raises_model_file_error_naming_the_file_and_the_field(case, saved_checkpoint, texts,
                                                                                  tmp_path):
    directory = shutil.copytree(saved_checkpoint, tmp_path / "ckpt")
    folder = directory / latest(directory)
    file = folder / checkpoints.MANIFEST
    edit, message = CRAFTED[case]
    if edit is None:
        file.write_text('{"format_version": 1, "epochs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    else:
        manifest = json.loads(file.read_text())
        edit(manifest, folder)
        file.write_text(json.dumps(manifest))
    if case == "random states":
        file = folder / checkpoints.RANDOM
    with pytest.raises(ModelFileError, match=message) as raised:
        TextAutoencoder(**PARAMS, checkpoint_dir=directory).fit(texts)
    assert str(file) in str(raised.value) and f"Delete {directory} to start afresh" in str(raised.value)
    TextAutoencoder(**PARAMS, checkpoint_dir=directory).partial_fit(texts)  # the refused fit left no lock ...
    assert sorted(os.listdir(directory)) == sorted(os.listdir(saved_checkpoint))  # ... nor anything else


def test_a_crafted_index_raises_model_file_error_and_deletes_nothing(saved_checkpoint, texts, tmp_path):
    directory = shutil.copytree(saved_checkpoint, tmp_path / "ckpt")
    (directory / checkpoints.INDEX).write_text(json.dumps({"format_version": 1, "written": ["epoch-0002", ".."]}))
    with pytest.raises(ModelFileError, match=rf"{re.escape(checkpoints.INDEX)}: not the index of checkpoints that "
                                             rf"sktextae writes: field written lists '\.\.', not the name"):
        TextAutoencoder(**PARAMS, checkpoint_dir=directory).fit(texts)
    assert sorted(os.listdir(directory)) == sorted(os.listdir(saved_checkpoint))
    # LATEST naming a folder the index does not list: not one the package wrote, not resumed.
    (directory / checkpoints.INDEX).write_text(json.dumps({"format_version": 1, "written": []}))
    with pytest.raises(ModelFileError, match=r"LATEST: names 'epoch-0002', a folder that sktextae did not write"):
        TextAutoencoder(**PARAMS, checkpoint_dir=directory).fit(texts)


# --------------------------------------------------------------------------- the folder and the disk

STARTED = []  # the nets whose training began (a module list: callbacks are deep-copied into the net)


class Started(Callback):
    def on_train_begin(self, net, **kwargs):
        STARTED.append(net)


def test_a_checkpoint_dir_that_cannot_be_created_is_refused_before_training(texts, tmp_path):
    (tmp_path / "somefile.txt").write_text("the user's")
    STARTED.clear()
    directory = tmp_path / "somefile.txt" / "ckpt"
    with pytest.raises(ValueError, match=rf"checkpoint_dir='{re.escape(str(directory))}' cannot be created "
                                         rf"\('{re.escape(str(tmp_path / 'somefile.txt'))}' is a file, not a folder\): "
                                         rf"pass a folder that exists or can be created"):
        TextAutoencoder(**PARAMS, checkpoint_dir=directory, callbacks=[Started()]).fit(texts)
    assert not STARTED and (tmp_path / "somefile.txt").read_text() == "the user's"
    # A folder that does not exist yet is created at the start of fit, and removed with its checkpoints.
    TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path / "new" / "ckpt", callbacks=[Started()]).fit(texts)
    assert len(STARTED) == 1 and not (tmp_path / "new" / "ckpt").exists()


@pytest.mark.parametrize("error, reason", [
    (RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4304"),
     r"torch could not write a file, most often because the disk is full: .*unexpected pos 4416 vs 4304"),
    (OSError(errno.ENOSPC, "No space left on device"), r"no space left on device"),
])
def test_a_full_disk_raises_a_clear_error_and_keeps_the_previous_checkpoint(error, reason, texts, tmp_path,
                                                                            monkeypatch):
    save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "0003" in str(f):  # into the (temporary) folder of epoch 3's checkpoint
            raise error
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=rf"could not write the checkpoint of epoch 3 to '{re.escape(str(tmp_path))}' "
                                      rf"\({reason}\); the previous checkpoint \(epoch-0002\) is intact, and fit with "
                                      rf"the same parameters resumes from it"):
        TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path).fit(texts)
    assert sorted(os.listdir(tmp_path)) == [checkpoints.INDEX, "LATEST", "epoch-0002"]  # no partial folder left
    monkeypatch.undo()
    resumed = TextAutoencoder(**PARAMS, checkpoint_dir=tmp_path).fit(texts)
    assert_same_fit(resumed, TextAutoencoder(**PARAMS).fit(texts), texts)
