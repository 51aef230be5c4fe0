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
"""

import contextlib
import copy
import errno
import hashlib
import json
import logging
import math
import numbers
import os
import pathlib
import re
import shutil
import threading
import uuid
import weakref

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping

from .callbacks import KLAnnealing
from .exceptions import ModelFileError
from .files import atomic_file, atomic_folder, file_sha256, remove_partials

try:
    import fcntl
except ImportError:  # Windows: no flock, so fits there are not locked against each other
    fcntl = None

FORMAT_VERSION = 1
INDEX_VERSION = 1
LATEST, MANIFEST = "LATEST", "manifest.json"
INDEX, LOCK = ".sktextae-checkpoints.json", ".sktextae-checkpoints.lock"
PARAMS, OPTIMIZER, HISTORY, RANDOM, TOKENIZER = "params.pt", "optimizer.pt", "history.json", "random.pt", "tokenizer.json"
CALLBACK_NAME = "sktextae_checkpoint"  # its name among the net's callbacks

# Parameters that do not change the model a fit trains: left out of the fingerprint. max_epochs is
# compared on its own: a resumed fit may train longer than the one that wrote the checkpoint.
_NOT_FINGERPRINTED = ("checkpoint_dir", "verbose", "callbacks", "inference_batch_size", "max_epochs", "device")
_EPOCH_FOLDER = re.compile(r"epoch-(\d{4,9})(?:-[0-9a-f]{8})?")
_BEST_WEIGHTS = re.compile(r"best-\d{1,4}\.pt")
_REQUIRED_FILES = (PARAMS, OPTIMIZER, HISTORY, RANDOM)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Far beyond what write() produces (a manifest is about 10 kB, an index a few hundred bytes): bounds
# what a crafted file makes us read before it is checked.
_MAX_JSON_BYTES = 16 * 1024 * 1024
_MAX_NESTING = 32  # of a fingerprinted parameter's value (a dict parameter is a list of [key, value] lists)
_MAX_COUNT = 2**62  # epochs, steps, texts: any real count is far below

_logger = logging.getLogger(__name__)


class FitCheckpoints:
    """The checkpoints of one ``fit`` call: where they go, the fingerprint they carry, the checkpoint it
    resumes from (``resume``, a ``SavedCheckpoint``, or None), and the lock on the folder that ``read``
    took for this fit (taken here when ``read`` was not called first)."""

    def __init__(self, directory, fingerprint, resume, *, tokenizer=None):
        self.directory, self.fingerprint, self.resume = pathlib.Path(directory), fingerprint, resume
        self.tokenizer = tokenizer  # a tokenizers.Tokenizer trained in fit, saved with each checkpoint
        self.fit_rng_state = None  # the fit's numpy RandomState before its first draw, set by _train
        self.folder_lock = _claim(self.directory, fingerprint)
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
                folder_lock = _lock(self.directory)
            except ValueError:
                return
        try:
            remove(self.directory)
        finally:
            folder_lock.release()
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only if empty, the lock file gone


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
        if self.random_states["cuda"] is not None and torch.device(net.device).type == "cuda":
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
                    callback.best_model_weights_ = _torch_load(self.folder / saved["best_weights"], net.device)
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
        if self.checkpoints_ is not None:
            write(self.checkpoints_, net)

    def __getstate__(self):
        return {**self.__dict__, "checkpoints_": None}  # a fit's checkpointing ends with it


# ---------------------------------------------------------------------------------------------- fingerprint

def fingerprint(estimator, texts, labels, *, device, pretrained=None):
    """What a checkpoint must match to be resumed: the parameters that shape training, the kind of
    device (bf16 autocast and the fused optimizer follow it), a digest of ``pretrained=``'s model, and
    a SHA-256 of the texts and the labels as the network trains on them."""
    params = estimator.get_params(deep=False)
    config = {name: _canonical(value) for name, value in sorted(params.items())
              if name not in _NOT_FINGERPRINTED and name != "pretrained"}
    config["device"] = torch.device(device).type
    if "pretrained" in params:
        config["pretrained"] = None if pretrained is None else _model_digest(pretrained)
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    if labels is not None:
        labels = np.ascontiguousarray(labels)
        digest.update(f"{labels.dtype.str}{labels.shape}".encode() + labels.tobytes())
    return {"config": config, "data": digest.hexdigest(), "n_texts": len(texts)}


def _canonical(value):
    """A parameter value as comparable JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return sorted(([_canonical(key), _canonical(item)] for key, item in value.items()), key=repr)
    if isinstance(value, np.random.RandomState):
        return "a RandomState instance"  # its draws come back from the checkpoint
    return f"{type(value).__name__} {value!r}"


def _model_digest(model):
    """A SHA-256 of a fitted model's tokenizer and weights."""
    digest = hashlib.sha256(model.tokenizer_.to_str().encode("utf-8"))
    for name, tensor in model.net_.module_.state_dict().items():
        digest.update(name.encode("utf-8") + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _differences(saved, current):
    """What differs between two fingerprints, in words."""
    differences = []
    for name in sorted(set(saved["config"]) | set(current["config"])):
        mine, theirs = current["config"].get(name, "(none)"), saved["config"].get(name, "(none)")
        if mine != theirs:
            differences.append(f"{name}={theirs!r} there, {mine!r} here")
    if saved["data"] != current["data"]:
        differences.append(f"the training data ({saved['n_texts']} texts there, {current['n_texts']} here, "
                           f"texts or labels not the same)")
    return differences


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
    folder_lock = _open(directory, fingerprint)
    try:
        saved = _read_latest(directory, fingerprint, max_epochs=max_epochs, folder_lock=folder_lock)
    except BaseException:
        folder_lock.release()
        raise
    with _GUARD:
        _UNCLAIMED[folder_lock.key] = folder_lock
    return saved


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
    if not _EPOCH_FOLDER.fullmatch(name) or folder.is_symlink() or not folder.is_dir():
        raise ModelFileError(f"{pointer}: names no checkpoint folder here ({name[:60]!r}); delete {directory} to "
                             f"start afresh.")
    if folder_lock.indexed and name not in folder_lock.written:
        raise ModelFileError(f"{pointer}: names {name!r}, a folder that sktextae did not write here ({INDEX} does "
                             f"not list it); delete {directory} to start afresh.")
    manifest = _read_manifest(folder / MANIFEST, directory)
    differences = _differences(manifest["fingerprint"], fingerprint)
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
    random_states = _read_random_states(folder / RANDOM, directory)
    return SavedCheckpoint(folder, manifest, random_states, folder_lock=folder_lock)


def _load_json(file, directory, *, missing):
    """A JSON file of this module's, read no further than ``_MAX_JSON_BYTES``."""
    try:
        with open(file, "rb") as handle:
            data = handle.read(_MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{file}: missing; {missing}. Delete {directory} to start afresh.") from None
    except OSError as error:
        raise ModelFileError(f"{file}: unreadable ({error}). Delete {directory} to start afresh.") from None
    if len(data) > _MAX_JSON_BYTES:
        raise ModelFileError(f"{file}: larger than {_MAX_JSON_BYTES} bytes, far beyond any that sktextae writes. "
                             f"Delete {directory} to start afresh.")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:  # arrays or objects nested thousands deep
        raise ModelFileError(f"{file}: not JSON that sktextae writes (nested too deeply). Delete {directory} to "
                             f"start afresh.") from None
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
        raise ModelFileError(f"{file}: not JSON ({error}). Delete {directory} to start afresh.") from None


def _read_manifest(file, directory):
    manifest = _load_json(file, directory, missing="every complete checkpoint holds one")
    try:
        _check_manifest(manifest, folder=file.parent.name)
    except _Invalid as problem:
        raise ModelFileError(f"{file}: {problem}. Delete {directory} to start afresh.") from None
    return manifest


def _read_random_states(file, directory):
    states = _torch_load(file, "cpu")
    expected = torch.get_rng_state()
    problem = None
    if not isinstance(states, dict) or set(states) != {"cpu", "cuda"}:
        problem = "holds no random states (a dict of cpu and cuda)"
    elif not (isinstance(states["cpu"], torch.Tensor) and states["cpu"].dtype == torch.uint8
              and states["cpu"].shape == expected.shape):
        problem = f"field cpu: not torch's CPU random state (a uint8 tensor of {expected.numel()} bytes)"
    elif states["cuda"] is not None and not (isinstance(states["cuda"], torch.Tensor)
                                             and states["cuda"].dtype == torch.uint8 and states["cuda"].dim() == 1):
        problem = "field cuda: not a CUDA random state (a uint8 tensor) nor None"
    if problem is not None:
        raise ModelFileError(f"{file}: {problem}. Delete {directory} to start afresh.")
    return states


def _torch_load(file, device):
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds (RuntimeError, UnpicklingError, EOFError, ...)
        raise ModelFileError(f"{file}: not a readable checkpoint file ({error}).") from None


# ---------------------------------------------------------------------------------------------- the schema
# What write() produces, checked in full before any of a manifest is used: a field of the wrong type,
# out of its range or unknown raises _Invalid naming it, which the reader turns into a ModelFileError
# naming the file.

class _Invalid(Exception):
    def __init__(self, field, problem):
        super().__init__(f"field {field} {problem}" if field else problem)


def _describe(value):
    """A short description of a value read from a file (never a long or deeply nested repr)."""
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_object(value, field, keys):
    if not isinstance(value, dict):
        raise _Invalid(field, f"must be an object of {', '.join(keys)}, not {_describe(value)}")
    missing = [key for key in keys if key not in value]
    if missing:
        raise _Invalid(field, f"lacks {', '.join(missing)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise _Invalid(f"{field}.{unknown[0][:40]}" if field else unknown[0][:40], "is not one a checkpoint holds")


def _check_int(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(field, f"must be an integer from {low} to {high}, not {_describe(value)}")


def _check_real(value, field, *, low=-math.inf, infinite=False):
    real = isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)
                                        and abs(value) <= 2**53)
    if not real or math.isnan(value) or (math.isinf(value) and not infinite) or value < low:
        kind = "a number" if infinite else "a finite number"
        raise _Invalid(field, f"must be {kind}{f' >= {low}' if low > -math.inf else ''}, not {_describe(value)}")


def _check_plain(value, field, depth=0):
    """A fingerprinted parameter value, as ``_canonical`` makes it: null, booleans, numbers, strings and
    lists of them, nested at most ``_MAX_NESTING`` deep."""
    if depth > _MAX_NESTING:
        raise _Invalid(field, f"is nested more than {_MAX_NESTING} deep")
    if isinstance(value, list):
        for item in value:
            _check_plain(item, field, depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise _Invalid(field, f"must hold only null, booleans, numbers, strings and lists, not {_describe(value)}")


def _check_manifest(manifest, *, folder):
    keys = ("format_version", "epochs", "fingerprint", "files", "state")
    if not isinstance(manifest, dict) or any(key not in manifest for key in keys):
        raise _Invalid("", f"not a checkpoint manifest (it needs {', '.join(keys)})")
    version = manifest["format_version"]
    _check_int(version, "format_version", 1, _MAX_COUNT)
    if version > FORMAT_VERSION:
        raise _Invalid("format_version", f"is {version}: checkpoint format {version} is newer than this sktextae "
                                         f"reads ({FORMAT_VERSION}); upgrade sktextae")
    _check_object(manifest, "", keys)
    epochs = manifest["epochs"]
    _check_int(epochs, "epochs", 1, _MAX_COUNT)
    named = _EPOCH_FOLDER.fullmatch(folder)
    if named is not None and int(named.group(1)) != epochs:
        raise _Invalid("epochs", f"is {epochs}, but the folder {folder!r} holds the checkpoint of epoch "
                                 f"{int(named.group(1))}")
    _check_fingerprint(manifest["fingerprint"])
    files = manifest["files"]
    if not isinstance(files, dict):
        raise _Invalid("files", f"must be an object of file names and SHA-256s, not {_describe(files)}")
    for name, digest in files.items():
        if name not in (*_REQUIRED_FILES, TOKENIZER) and not _BEST_WEIGHTS.fullmatch(name):
            raise _Invalid(f"files.{name[:40]}", "is not a file a checkpoint holds")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _Invalid(f"files.{name}", f"must be a SHA-256 (64 lowercase hex digits), not {_describe(digest)}")
    if not set(_REQUIRED_FILES) <= set(files):
        raise _Invalid("files", f"lists {sorted(files)}, not every file a checkpoint holds")
    _check_state(manifest["state"], epochs=epochs, files=files)


def _check_fingerprint(fingerprint):
    _check_object(fingerprint, "fingerprint", ("config", "data", "n_texts"))
    config = fingerprint["config"]
    if not isinstance(config, dict):
        raise _Invalid("fingerprint.config", f"must be an object of parameters, not {_describe(config)}")
    for name, value in config.items():
        _check_plain(value, f"fingerprint.config.{name[:40]}")
    if not isinstance(fingerprint["data"], str) or not _SHA256.fullmatch(fingerprint["data"]):
        raise _Invalid("fingerprint.data", f"must be a SHA-256, not {_describe(fingerprint['data'])}")
    _check_int(fingerprint["n_texts"], "fingerprint.n_texts", 0, _MAX_COUNT)


def _check_state(state, *, epochs, files):
    _check_object(state, "state", ("fit_rng", "shuffle_rng", "kl_weight", "callbacks"))
    # numpy's RandomState.get_state(): MT19937, its key of 624 uint32, the position in it (0 to 624),
    # and the cached Gaussian.
    fit_rng = state["fit_rng"]
    if not isinstance(fit_rng, list) or len(fit_rng) != 5 or fit_rng[0] != "MT19937":
        raise _Invalid("state.fit_rng", f"must be a RandomState's state ['MT19937', key, position, has_gauss, "
                                        f"cached_gaussian], not {_describe(fit_rng)}")
    if not isinstance(fit_rng[1], list) or len(fit_rng[1]) != 624:
        raise _Invalid("state.fit_rng[1]", f"must be MT19937's key of 624 integers, not {_describe(fit_rng[1])}")
    for word in fit_rng[1]:
        _check_int(word, "state.fit_rng[1]", 0, 2**32 - 1)
    _check_int(fit_rng[2], "state.fit_rng[2]", 0, 624)
    _check_int(fit_rng[3], "state.fit_rng[3]", 0, 1)
    _check_real(fit_rng[4], "state.fit_rng[4]")
    # A numpy Generator's bit_generator.state: default_rng's PCG64, its 128-bit state and increment.
    shuffle = state["shuffle_rng"]
    _check_object(shuffle, "state.shuffle_rng", ("bit_generator", "state", "has_uint32", "uinteger"))
    if shuffle["bit_generator"] != "PCG64":
        raise _Invalid("state.shuffle_rng.bit_generator", f"must be 'PCG64', not {_describe(shuffle['bit_generator'])}")
    _check_object(shuffle["state"], "state.shuffle_rng.state", ("state", "inc"))
    for key in ("state", "inc"):
        _check_int(shuffle["state"][key], f"state.shuffle_rng.state.{key}", 0, 2**128 - 1)
    _check_int(shuffle["has_uint32"], "state.shuffle_rng.has_uint32", 0, 1)
    _check_int(shuffle["uinteger"], "state.shuffle_rng.uinteger", 0, 2**32 - 1)
    _check_real(state["kl_weight"], "state.kl_weight", low=0.0)
    callbacks = state["callbacks"]
    if not isinstance(callbacks, dict):
        raise _Invalid("state.callbacks", f"must be an object of callback states, not {_describe(callbacks)}")
    for name, saved in callbacks.items():
        field = f"state.callbacks.{name[:40]}"
        if isinstance(saved, dict) and "steps_" in saved:  # a KLAnnealing's
            _check_object(saved, field, ("steps_",))
            _check_int(saved["steps_"], f"{field}.steps_", 0, _MAX_COUNT)
            continue
        _check_object(saved, field, ("misses_", "dynamic_threshold_", "best_epoch_", "best_weights"))  # EarlyStopping
        _check_int(saved["misses_"], f"{field}.misses_", 0, _MAX_COUNT)
        _check_real(saved["dynamic_threshold_"], f"{field}.dynamic_threshold_", infinite=True)
        _check_int(saved["best_epoch_"], f"{field}.best_epoch_", 0, epochs)
        best = saved["best_weights"]
        if best is not None and best != PARAMS and not (isinstance(best, str) and _BEST_WEIGHTS.fullmatch(best)
                                                        and best in files):
            raise _Invalid(f"{field}.best_weights", f"must be null, {PARAMS!r} or a best-<i>.pt file that files "
                                                    f"lists, not {_describe(best)}")


# ---------------------------------------------------------------------------------------------- the folder
# Two fits writing into one folder would remove each other's checkpoints as they go: a fit holds an
# exclusive flock on the folder's lock file from read() to the end of training, and a second one is
# refused. flock ends with the process, so a killed fit leaves no stale lock; the file holds the pid
# only to name it in the error. Within a process, _HELD knows which folders are held and by which
# thread: flock alone would refuse a fit its own earlier lock, kept alive by the traceback of a fit
# that failed before training.

_GUARD = threading.RLock()
_HELD = weakref.WeakValueDictionary()  # realpath of a folder -> this process' _FolderLock on it
_UNCLAIMED = {}  # realpath -> the lock that read() took, until the fit's FitCheckpoints takes it over


class _FolderLock:
    """This process' hold on a checkpoint folder, and the names that the folder's index lists
    (``written``; ``indexed``: whether the index file was there when the fit began)."""

    def __init__(self, directory, key, *, created):
        self.directory, self.key, self.created = directory, key, created
        self.thread, self.pid, self.training = threading.get_ident(), os.getpid(), False
        self.written, self.indexed = [], False
        descriptor = _flock(directory) if fcntl is not None else None
        # Dropped without release() (a fit that failed before training, once its traceback is gone),
        # the lock ends all the same.
        self._finalizer = weakref.finalize(self, _unlock, descriptor, directory / LOCK, self.pid)

    @property
    def held(self):
        return self._finalizer.alive

    def release(self, *, remove_created=True):
        with _GUARD:
            if _HELD.get(self.key) is self:
                del _HELD[self.key]
            if _UNCLAIMED.get(self.key) is self:
                del _UNCLAIMED[self.key]
        held = self._finalizer.alive
        self._finalizer()
        if held and remove_created and self.created:
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # made by this fit, which wrote nothing in it: as if it never ran


def _open(directory, fingerprint):
    """Create ``directory`` if missing, lock it, and read its index (see ``_read_index``)."""
    folder_lock = _lock(directory, created=_make_folder(directory))
    try:
        folder_lock.written, folder_lock.indexed = _read_index(directory, fingerprint)
    except BaseException:
        folder_lock.release()
        raise
    return folder_lock


def _claim(directory, fingerprint):
    """The lock that ``read`` took on ``directory`` in this thread, or a new one."""
    key = os.path.realpath(directory)
    with _GUARD:
        folder_lock = _UNCLAIMED.get(key)
        if folder_lock is not None and folder_lock.thread == threading.get_ident() and folder_lock.held:
            return _UNCLAIMED.pop(key)
    return _open(pathlib.Path(directory), fingerprint)


def _make_folder(directory):
    """Create ``directory`` when missing (True when this did), or say now why it cannot be: before
    training rather than at the end of the first epoch."""
    if directory.is_dir():
        return False
    if directory.exists() or directory.is_symlink():
        raise ValueError(f"checkpoint_dir={str(directory)!r} is a file: pass a folder (it is created if missing).")
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        if directory.is_dir():  # made by another fit at this very moment
            return False
        raise ValueError(f"checkpoint_dir={str(directory)!r} is a file: pass a folder (it is created if "
                         f"missing).") from None
    except OSError as error:
        blocker = next((parent for parent in directory.parents if parent.exists()), None)
        reason = error.strerror or str(error)
        if blocker is not None and not blocker.is_dir():
            reason = f"{str(blocker)!r} is a file, not a folder"
        raise ValueError(f"checkpoint_dir={str(directory)!r} cannot be created ({reason}): pass a folder that "
                         f"exists or can be created.") from None
    return True


def _lock(directory, *, created=False):
    key = os.path.realpath(directory)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():  # not one a forked child inherited from its parent
            if held.thread == threading.get_ident() and not held.training:
                # A fit of this thread that failed before training (its traceback still holds its lock):
                # this thread runs one fit at a time, so that one has ended.
                held.release(remove_created=False)
            else:
                raise _in_use(directory, os.getpid(), " in this process")
        folder_lock = _FolderLock(pathlib.Path(directory), key, created=created)
        _HELD[key] = folder_lock
    return folder_lock


def _flock(directory):
    """An open descriptor of ``directory``'s lock file, exclusively locked, with this process' id in it;
    None where the file system has no flock."""
    file = directory / LOCK
    while True:
        try:
            descriptor = os.open(file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            raise ValueError(f"checkpoint_dir={str(directory)!r}: its lock file {LOCK} cannot be opened "
                             f"({error.strerror or error}): pass a folder that you can write in.") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _recorded_pid(descriptor)
            os.close(descriptor)
            raise _in_use(directory, pid, "") from None
        except OSError as error:  # ENOLCK, EOPNOTSUPP: some network file systems
            os.close(descriptor)
            _logger.warning("checkpoint_dir=%r cannot be locked (%s): another fit using it at the same time would "
                            "remove this one's checkpoints.", str(directory), error.strerror or error)
            return None
        # Its holder may have released and unlinked the file between our open and our flock: a lock on a
        # file that no longer has this name locks nothing, so lock the one there now.
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(file, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
            return descriptor
        os.close(descriptor)


def _unlock(descriptor, file, pid):
    if descriptor is None:
        return
    if os.getpid() == pid:  # a forked child closes its copy without unlocking its parent's lock
        with contextlib.suppress(OSError):
            # Unlinked while still locked, so that a fit waiting to lock this file finds it gone and
            # locks a new one (see _flock).
            if os.path.samestat(os.fstat(descriptor), os.stat(file, follow_symlinks=False)):
                os.unlink(file)
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)  # for the forked children sharing the descriptor too
    os.close(descriptor)


def _recorded_pid(descriptor):
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _in_use(directory, pid, where):
    who = "another process" if pid is None else f"process {pid}"
    return ValueError(f"checkpoint_dir={str(directory)!r} is in use by {who} (another fit{where}): two fits cannot "
                      f"share a checkpoint folder. Wait for that fit to end, or pass another checkpoint_dir.")


# ---------------------------------------------------------------------------------------------- the index
# The package deletes only what its index names. An index rather than a check of each folder's manifest:
# a checkpoint being written has no manifest yet, and a name goes in the index before its folder is
# created, so what a kill leaves (the folder, or sktextae.files' hidden .<name>.*.partial beside it)
# is known to be ours even half written.

def _read_index(directory, fingerprint):
    """The folder names that ``directory``'s index lists, and whether it has one; without one (a folder
    written before the index existed), the checkpoints of this very fit found there, then indexed."""
    file = directory / INDEX
    if not os.path.lexists(file):
        return _adopt(directory, fingerprint), False
    index = _load_json(file, directory, missing="")
    try:
        _check_object(index, "", ("format_version", "written"))
        _check_int(index["format_version"], "format_version", 1, INDEX_VERSION)
        written = index["written"]
        if not isinstance(written, list) or len(written) > 100_000:
            raise _Invalid("written", f"must be a list of folder names, not {_describe(written)}")
        for name in written:
            if not isinstance(name, str) or not _EPOCH_FOLDER.fullmatch(name):
                raise _Invalid("written", f"lists {_describe(name)}, not the name of a checkpoint folder "
                                          f"(epoch-NNNN)")
    except _Invalid as problem:
        raise ModelFileError(f"{file}: not the index of checkpoints that sktextae writes: {problem}. Delete "
                             f"{directory} to start afresh.") from None
    return list(dict.fromkeys(written)), True


def _adopt(directory, fingerprint):
    """The ``epoch-NNNN`` folders in ``directory`` that hold a checkpoint of this very fit (its manifest
    valid, its fingerprint this fit's): written by sktextae before the index existed. A folder of the
    user's holds no such manifest, and is left alone."""
    adopted = []
    for path in sorted(directory.iterdir()):
        if not _EPOCH_FOLDER.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            manifest = _read_manifest(path / MANIFEST, directory)
        except ModelFileError:
            continue
        if not _differences(manifest["fingerprint"], fingerprint):
            adopted.append(path.name)
    if adopted:
        _write_index(directory, adopted)
    return adopted


def _write_index(directory, written):
    with atomic_file(directory / INDEX, "w") as handle:
        handle.write(json.dumps({"format_version": INDEX_VERSION, "written": list(written)}, indent=1) + "\n")


def _remove_folder(path):
    if not path.is_symlink() and path.is_dir():  # a link put in its place is not ours, nor what it points to
        shutil.rmtree(path, ignore_errors=True)


def remove(directory):
    """Remove the checkpoints that sktextae wrote in ``directory``: ``LATEST`` first (a kill midway leaves
    nothing to resume from), the folders its index lists and what killed writes left of them, then
    the index. Nothing else is touched; the folder is removed when that leaves it empty."""
    directory = pathlib.Path(directory)
    file = directory / INDEX
    if not directory.is_dir() or not file.is_file():
        return
    try:
        written, _ = _read_index(directory, None)
    except ModelFileError as error:
        _logger.warning("%s The checkpoints in %s are left as they are.", error, directory)
        return
    with contextlib.suppress(FileNotFoundError):
        (directory / LATEST).unlink()
    remove_partials(directory, LATEST)
    for name in written:
        _remove_folder(directory / name)
        remove_partials(directory, name)
    left = [name for name in written if os.path.lexists(directory / name)]
    if left:  # still ours to remove, by a later fit
        _write_index(directory, left)
    else:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
        remove_partials(directory, INDEX)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if empty


# ---------------------------------------------------------------------------------------------- writing

def write(checkpoints, net):
    """Write the checkpoint of the epoch that just ended, atomically (see the module's docstring), then
    remove the older ones.

    Raises OSError, after removing what it wrote of this checkpoint, when it cannot be written (a
    full disk, most often): the message says why, and that the previous checkpoint is intact.
    """
    directory, folder_lock = checkpoints.directory, checkpoints.folder_lock
    epoch = len(net.history)
    name = _new_folder_name(directory, epoch, folder_lock.written, latest=checkpoints.latest)
    folder, complete = directory / name, False
    try:
        if name not in folder_lock.written:  # listed before it exists: see "the index" above
            _write_index(directory, [*folder_lock.written, name])
            folder_lock.written = [*folder_lock.written, name]
        with atomic_folder(folder) as temporary:
            _write_checkpoint(temporary, checkpoints, net, epoch)
        complete = True
        with atomic_file(directory / LATEST, "w") as handle:
            handle.write(name + "\n")
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError ("unexpected pos")
        if complete:  # not named in LATEST: of no use
            _remove_folder(folder)
        raise _write_error(error, directory, epoch, checkpoints.latest) from error
    checkpoints.latest = name
    _remove_older(directory, folder_lock, keep=name)


def _new_folder_name(directory, epoch, written, *, latest):
    """``epoch-NNNN``, or ``epoch-NNNN-<hex>`` when a folder that is not ours bears that name."""
    name = f"epoch-{epoch:04d}"
    if name in written and name != latest:
        _remove_folder(directory / name)  # ours, left by a process killed before LATEST named it
    while os.path.lexists(directory / name):  # the user's, never touched (or ours, and could not be removed)
        name = f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}"
    return name


def _write_checkpoint(folder, checkpoints, net, epoch):
    net.save_params(f_params=folder / PARAMS, f_optimizer=folder / OPTIMIZER, f_history=folder / HISTORY)
    cuda = torch.device(net.device)
    torch.save({"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(cuda) if cuda.type == "cuda" else None}, folder / RANDOM)
    if checkpoints.tokenizer is not None:
        (folder / TOKENIZER).write_text(checkpoints.tokenizer.to_str(), encoding="utf-8")
    state = {"fit_rng": _json_rng_state(checkpoints.fit_rng_state), "shuffle_rng": net.shuffle_rng_.bit_generator.state,
             "kl_weight": float(net.kl_weight), "callbacks": {}}
    for index, (name, callback) in enumerate(net.callbacks_):
        if isinstance(callback, KLAnnealing):
            state["callbacks"][name] = {"steps_": int(callback.steps_)}
        elif isinstance(callback, EarlyStopping):
            best = None
            if callback.best_model_weights_ is not None:
                best = PARAMS if callback.best_epoch_ == net.history[-1, "epoch"] else f"best-{index}.pt"
                if best != PARAMS:
                    torch.save(callback.best_model_weights_, folder / best)
            state["callbacks"][name] = {"misses_": int(callback.misses_),
                                        "dynamic_threshold_": float(callback.dynamic_threshold_),
                                        "best_epoch_": int(callback.best_epoch_), "best_weights": best}
    files = sorted(path.name for path in folder.iterdir())
    manifest = {"format_version": FORMAT_VERSION, "epochs": epoch, "fingerprint": checkpoints.fingerprint,
                "state": state, "files": {name: file_sha256(folder / name) for name in files}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")  # last


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


def _remove_older(directory, folder_lock, *, keep):
    """Remove the folders this package wrote here but ``keep``: the older checkpoints, and what killed
    writes left."""
    for name in folder_lock.written:
        if name != keep:
            _remove_folder(directory / name)
        remove_partials(directory, name)
    remove_partials(directory, LATEST)
    remove_partials(directory, INDEX)
    left = [name for name in folder_lock.written if name == keep or os.path.lexists(directory / name)]
    if left != folder_lock.written:
        _write_index(directory, left)
        folder_lock.written = left


def _json_rng_state(state):
    name, keys, position, has_gauss, cached = state
    return [name, np.asarray(keys).tolist(), int(position), int(has_gauss), float(cached)]
