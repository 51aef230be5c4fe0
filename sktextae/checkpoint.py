"""Checkpoints of a fit in progress, one per epoch, from which a killed or interrupted ``fit`` resumes.

A checkpoint folder (the ``checkpoint_dir`` parameter) holds, besides whatever else is in it:

- ``LATEST``: the name of the last complete checkpoint, replaced atomically;
- ``epoch-NNNN/`` (or ``epoch-NNNN-<hex>/`` where a folder of the user's already bears that name): the
  checkpoint of the end of epoch NNNN: skorch's ``save_params`` files (``params.pt``, the network's
  weights; ``optimizer.pt``, AdamW's state; ``history.json``), ``random.pt`` (torch's random states),
  ``tokenizer.json`` (a tokenizer trained in ``fit``), ``best-<i>.pt`` (the best weights an
  ``EarlyStopping`` callback holds, when they are not the last epoch's) and ``manifest.json``, written
  last: the fingerprint of the fit (its parameters and a SHA-256 of its training data), the random
  states and callback state as plain data, and a SHA-256 of every other file;
- ``.sktextae-checkpoints.json``, the index: the names of the folders this package wrote there. A name
  goes in before its folder is created, so that what a killed write leaves is known to be ours; the
  package deletes only the folders the index names (and the ``.<name>.*.partial`` leftovers of
  ``sktextae.files``' atomic writes of those names), never a folder of the user's, whatever its name;
- ``.sktextae-checkpoints.lock``: locked (``fcntl.flock``) by the fit that uses the folder, and holding
  its process id, so that a second fit on the same folder stops with a clear error. The lock ends with
  the fit, or with its process.

Each epoch's checkpoint is written by ``sktextae.files.atomic_folder`` (a hidden temporary folder,
flushed to disk, then renamed to ``epoch-NNNN``), and only then named in ``LATEST``; the older ones are
removed after. A process killed at any moment leaves ``LATEST`` naming a complete checkpoint, or no
``LATEST`` before the first one. Everything read back is checked before use: the index and the
manifest against the schema of what ``write`` produces, every file against its SHA-256; the ``.pt``
files are read with ``torch.load(weights_only=True)``: tensors and plain data only.

A folder written by sktextae before the index existed (no index file) is still resumed: the
``epoch-NNNN`` folders whose manifest is one of the very fit that reads them are taken as the
package's (a user's folder holds no such manifest); its other folders are left alone.

The code is in three modules, whose imports go one way: this one, the API that fitting and the network
use (``FitCheckpoints``, ``SavedCheckpoint``, ``EpochCheckpoint``, ``fingerprint``, ``read``, ``write``,
``remove``); ``sktextae.checkpoint_manifest``, one checkpoint's files, written and checked when read back;
``sktextae.checkpoint_folder``, the folder's lock, its index and removal.
"""

import contextlib
import copy
import errno
import numbers
import pathlib

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping

from .callbacks import KLAnnealing
from .checkpoint_folder import (
    GUARD,
    INDEX,
    LATEST,
    UNCLAIMED,
    claim,
    lock,
    new_folder_name,
    open_folder,
    remove,
    remove_folder,
    remove_older,
    write_index,
)
from .checkpoint_folder import INDEX_VERSION as INDEX_VERSION
from .checkpoint_folder import LOCK as LOCK
from .checkpoint_manifest import (
    EPOCH_FOLDER,
    HISTORY,
    MANIFEST,
    OPTIMIZER,
    PARAMS,
    RANDOM,
    TOKENIZER,
    fingerprint_differences,
    read_manifest,
    read_random_states,
    torch_load,
    write_checkpoint,
)
from .checkpoint_manifest import FORMAT_VERSION as FORMAT_VERSION
from .checkpoint_manifest import fingerprint as fingerprint
from .device import is_cuda
from .exceptions import ModelFileError
from .files import atomic_file, atomic_folder, file_sha256

CALLBACK_NAME = "sktextae_checkpoint"  # its name among the net's callbacks

class FitCheckpoints:
    """The checkpoints of one ``fit`` call: where they go, the fingerprint they carry, the checkpoint it
    resumes from (``resume``, a ``SavedCheckpoint``, or None), and the lock on the folder that ``read``
    took for this fit (taken here when ``read`` was not called first)."""

    writes = True  # see FollowerCheckpoints

    def __init__(self, directory, fingerprint, resume, *, tokenizer=None):
        self.directory, self.fingerprint, self.resume = pathlib.Path(directory), fingerprint, resume
        self.tokenizer = tokenizer  # a tokenizers.Tokenizer trained in fit, saved with each checkpoint
        self.fit_rng_state = None  # the fit's numpy RandomState before its first draw, set by _train
        self.folder_lock = claim(self.directory, fingerprint)
        self.latest = None if resume is None else resume.folder.name  # what LATEST names, for error messages

    def fit_rng(self, random_state):
        """The fit's random source: the one the checkpoint's fit started from, or a new one."""
        from sklearn.utils import check_random_state

        if self.resume is None:
            return check_random_state(random_state)
        rng = np.random.RandomState()
        rng.set_state(self.resume.fit_rng_state)
        return rng

    def start_training(self):
        """Training begins: from now on the lock is this fit's until ``release`` (or its process' end)."""
        self.folder_lock.training = True

    def release(self):
        """Free the folder for other fits (once; later calls do nothing)."""
        self.folder_lock.release()

    def remove(self):
        """Remove every checkpoint this package wrote in the folder (``LATEST`` first: a kill midway leaves
        nothing to resume from), and the folder itself when nothing else is left in it.

        Done under the folder's lock, taken again if training released it: when another fit took the
        folder in the meantime, the checkpoints are that fit's to resume from, and are kept."""
        folder_lock = self.folder_lock
        if not folder_lock.held:
            try:
                folder_lock = lock(self.directory)
            except ValueError:
                return
        try:
            remove(self.directory)
        finally:
            folder_lock.release()
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only if empty, the lock file gone


class FollowerCheckpoints:
    """What a process of a data-parallel fit other than rank 0 knows of the fit's checkpoints: the one
    rank 0 resumes (``resume``, read here too, or None). Rank 0 holds the folder's lock and writes every
    checkpoint; this process writes, locks and removes nothing."""

    writes = False

    def __init__(self, directory, fingerprint, resume):
        self.directory, self.fingerprint, self.resume = pathlib.Path(directory), fingerprint, resume
        self.tokenizer, self.fit_rng_state = None, None

    fit_rng = FitCheckpoints.fit_rng

    def start_training(self):
        pass

    def release(self):
        pass

    def remove(self):
        pass


class SavedCheckpoint:
    """A complete checkpoint read from disk (see ``read``): its manifest checked against the schema of
    what ``write`` produces, its files against the manifest."""

    def __init__(self, folder, manifest, random_states, *, folder_lock=None):
        self.folder, self.manifest, self.random_states = folder, manifest, random_states
        self.folder_lock = folder_lock  # released when a file proves unusable, before the fit has started
        self.epochs = manifest["epochs"]
        state = manifest["state"]
        self.fit_rng_state = (state["fit_rng"][0], np.asarray(state["fit_rng"][1], dtype=np.uint32),
                              *state["fit_rng"][2:])

    def _unusable(self, message):
        if self.folder_lock is not None:
            self.folder_lock.release()
        return ModelFileError(message)

    @property
    def tokenizer(self):
        """The tokenizer that the checkpoint's fit trained, or None (a pretrained or given one)."""
        from tokenizers import Tokenizer

        if TOKENIZER not in self.manifest["files"]:
            return None
        file = self.folder / TOKENIZER
        try:
            return Tokenizer.from_str(file.read_text(encoding="utf-8"))
        except Exception as error:  # the Rust library's own exception type
            raise self._unusable(f"{file}: not a tokenizer ({error}).") from None

    def load_into(self, net):
        """The weights, the optimizer's state and the history, into an initialised net (skorch's
        ``load_params``); the random states and the callbacks' wait for ``on_train_begin``."""
        try:
            net.load_params(f_params=self.folder / PARAMS, f_optimizer=self.folder / OPTIMIZER,
                            f_history=self.folder / HISTORY)
        except (RuntimeError, ValueError, KeyError, OSError) as error:  # RecursionError is a RuntimeError
            raise self._unusable(f"{self.folder}: the checkpoint does not fit this network ({error}).") from None

    def restore_callbacks(self, net):
        """Put back what the net's callbacks and random sources held at the end of the checkpoint's epoch."""
        state = self.manifest["state"]
        net.shuffle_rng_.bit_generator.state = state["shuffle_rng"]
        torch.set_rng_state(self.random_states["cpu"])
        if self.random_states["cuda"] is not None and is_cuda(net.device):
            torch.cuda.set_rng_state(self.random_states["cuda"], torch.device(net.device))
        net.kl_weight = state["kl_weight"]
        callbacks = dict(net.callbacks_)
        for name, saved in state["callbacks"].items():
            callback = callbacks.get(name)
            kind = KLAnnealing if "steps_" in saved else EarlyStopping
            if isinstance(callback, (KLAnnealing, EarlyStopping)) and not isinstance(callback, kind):
                raise ModelFileError(f"{self.folder / MANIFEST}: field state.callbacks.{name} holds the state of a "
                                     f"{kind.__name__}, but this fit's {name!r} is a {type(callback).__name__}. "
                                     f"Delete {self.folder.parent} to start afresh.")
            if isinstance(callback, KLAnnealing):
                callback.steps_ = saved["steps_"]
            elif isinstance(callback, EarlyStopping):
                callback.misses_, callback.dynamic_threshold_ = saved["misses_"], saved["dynamic_threshold_"]
                callback.best_epoch_ = saved["best_epoch_"]
                callback.best_model_weights_ = None
                if saved["best_weights"] == PARAMS:
                    callback.best_model_weights_ = copy.deepcopy(net.module_.state_dict())
                elif saved["best_weights"] is not None:
                    callback.best_model_weights_ = torch_load(self.folder / saved["best_weights"], net.device)
        # Scoring callbacks (skorch's PassthroughScoring and EpochScoring) record "<name>_best" against
        # the best score so far, which they keep from their initialize(): recomputed from the history.
        for _, callback in net.callbacks_:
            if all(hasattr(callback, attribute) for attribute in ("best_score_", "name", "lower_is_better")):
                scores = [row[callback.name] for row in net.history if callback.name in row]
                scores = [score for score in scores if isinstance(score, numbers.Real) and not np.isnan(score)]
                if scores:
                    callback.best_score_ = min(scores) if callback.lower_is_better else max(scores)


class EpochCheckpoint(Callback):
    """Write a checkpoint at the end of every epoch of ``fit``, and resume from one at its start.

    Idle unless ``start`` gave it the fit's ``FitCheckpoints``: a net built with it checkpoints only
    during the ``fit`` call that started it, never in ``partial_fit``. ``stop`` (which the fit calls
    however training ends) frees the folder for other fits. It is the last callback before the log,
    so that the history it saves holds every callback's record of the epoch. An epoch that
    ``EarlyStopping`` ends training on gets no checkpoint: a fit resumed from the one before replays
    it and stops there too.
    """

    def __init__(self, directory=None):
        self.directory = directory

    def initialize(self):
        self.checkpoints_ = None
        return self

    def start(self, checkpoints):
        self.checkpoints_ = checkpoints
        checkpoints.start_training()

    def stop(self):
        if self.checkpoints_ is not None:
            self.checkpoints_.release()
        self.checkpoints_ = None

    def on_train_begin(self, net, **kwargs):
        # After the other callbacks' on_train_begin, which reset their state (EarlyStopping's).
        if self.checkpoints_ is not None and self.checkpoints_.resume is not None:
            self.checkpoints_.resume.restore_callbacks(net)

    def on_epoch_end(self, net, **kwargs):
        if self.checkpoints_ is not None and self.checkpoints_.writes:
            write(self.checkpoints_, net)

    def __getstate__(self):
        return {**self.__dict__, "checkpoints_": None}  # a fit's checkpointing ends with it


# ---------------------------------------------------------------------------------------------- reading

def read(directory, fingerprint, *, max_epochs):
    """The checkpoint in ``directory`` to resume from, or None when it holds none.

    Called at the start of ``fit``, before any training: it creates the folder when missing and
    locks it for the fit (the ``FitCheckpoints`` then made for the same folder holds the lock until
    the fit ends). Raises ValueError when the folder cannot be created, is in use by another fit,
    holds a checkpoint of another fit (its fingerprint differs) or one that has trained more than
    ``max_epochs`` epochs, and ``ModelFileError`` naming the file and the field when it is damaged.
    """
    directory = pathlib.Path(directory)
    folder_lock = open_folder(directory, fingerprint)
    try:
        saved = _read_latest(directory, fingerprint, max_epochs=max_epochs, folder_lock=folder_lock)
    except BaseException:
        folder_lock.release()
        raise
    with GUARD:
        UNCLAIMED[folder_lock.key] = folder_lock
    return saved


def read_follower(directory, fingerprint, *, max_epochs, name):
    """The checkpoint ``name`` (a folder that ``LATEST`` names, or None) that rank 0 of a data-parallel fit
    read with ``read`` and resumes, read and checked the same way by another process of the fit, without
    the lock that rank 0 holds: nothing in the folder changes before the fit's first epoch ends."""
    if name is None:
        return None
    view = _IndexView(written=[name])
    return _read_latest(pathlib.Path(directory), fingerprint, max_epochs=max_epochs, folder_lock=view)


class _IndexView:
    """The index as rank 0 read it, for ``read_follower``: a stand-in for the lock ``read`` takes."""

    indexed = True

    def __init__(self, written):
        self.written = written

    def release(self):
        pass


def _read_latest(directory, fingerprint, *, max_epochs, folder_lock):
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    try:
        with open(pointer, "rb") as handle:
            name = handle.read(256).decode("utf-8").strip()  # a folder name: a longer file is no LATEST of ours
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{pointer}: unreadable ({error}); delete {directory} to start afresh.") from None
    folder = directory / name
    if not EPOCH_FOLDER.fullmatch(name) or folder.is_symlink() or not folder.is_dir():
        raise ModelFileError(f"{pointer}: names no checkpoint folder here ({name[:60]!r}); delete {directory} to "
                             f"start afresh.")
    if folder_lock.indexed and name not in folder_lock.written:
        raise ModelFileError(f"{pointer}: names {name!r}, a folder that sktextae did not write here ({INDEX} does "
                             f"not list it); delete {directory} to start afresh.")
    manifest = read_manifest(folder / MANIFEST, directory)
    differences = fingerprint_differences(manifest["fingerprint"], fingerprint)
    if differences:
        raise ValueError(f"checkpoint_dir={str(directory)!r} holds a checkpoint of another fit: "
                         f"{'; '.join(differences)}. fit resumes a checkpoint only with the same parameters on the "
                         f"same texts: set them back to resume it, pass another checkpoint_dir, or delete "
                         f"{str(directory)!r} to start afresh.")
    if manifest["epochs"] > max_epochs:
        raise ValueError(f"the checkpoint in {str(directory)!r} has trained {manifest['epochs']} epochs, more than "
                         f"max_epochs={max_epochs}: set max_epochs >= {manifest['epochs']} to resume it, or delete "
                         f"the folder to start afresh.")
    for relative, digest in manifest["files"].items():
        file = folder / relative
        if file.is_symlink() or not file.is_file():
            raise ModelFileError(f"{file}: missing; {MANIFEST} lists it. Delete {directory} to start afresh.")
        if file_sha256(file) != digest:
            raise ModelFileError(f"{file}: damaged since it was written (its SHA-256 does not match {MANIFEST}). "
                                 f"Delete {directory} to start afresh.")
    random_states = read_random_states(folder / RANDOM, directory)
    return SavedCheckpoint(folder, manifest, random_states, folder_lock=folder_lock)


# ---------------------------------------------------------------------------------------------- writing

def write(checkpoints, net):
    """Write the checkpoint of the epoch that just ended, atomically (see the module's docstring), then
    remove the older ones.

    Raises OSError, after removing what it wrote of this checkpoint, when it cannot be written (a
    full disk, most often): the message says why, and that the previous checkpoint is intact.
    """
    directory, folder_lock = checkpoints.directory, checkpoints.folder_lock
    epoch = len(net.history)
    name = new_folder_name(directory, epoch, folder_lock.written, latest=checkpoints.latest)
    folder, complete = directory / name, False
    try:
        if name not in folder_lock.written:  # listed before it exists: see "the index" in checkpoint_folder
            write_index(directory, [*folder_lock.written, name])
            folder_lock.written = [*folder_lock.written, name]
        with atomic_folder(folder) as temporary:
            write_checkpoint(temporary, checkpoints, net, epoch)
        complete = True
        with atomic_file(directory / LATEST, "w") as handle:
            handle.write(name + "\n")
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError ("unexpected pos")
        if complete:  # not named in LATEST: of no use
            remove_folder(folder)
        raise _write_error(error, directory, epoch, checkpoints.latest) from error
    checkpoints.latest = name
    remove_older(directory, folder_lock, keep=name)


def _write_error(error, directory, epoch, latest):
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        reason = "no space left on device"
    elif isinstance(error, OSError):
        reason = f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}"
    else:
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
        if "unexpected pos" in reason or "write failed" in reason:
            reason = f"torch could not write a file, most often because the disk is full: {reason}"
    if latest is None:
        previous = "no earlier checkpoint was written, so a new fit starts afresh"
    else:
        previous = f"the previous checkpoint ({latest}) is intact, and fit with the same parameters resumes from it"
    message = (f"could not write the checkpoint of epoch {epoch} to {str(directory)!r} ({reason}); {previous}. "
               f"Free some space (or remove the cause), or pass another checkpoint_dir.")
    return OSError(error.errno, message) if isinstance(error, OSError) and error.errno else OSError(message)
