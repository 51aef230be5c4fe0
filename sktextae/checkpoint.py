"""Checkpoints of a fit in progress, one per epoch, from which a killed or interrupted ``fit`` resumes.

A checkpoint folder (the ``checkpoint_dir`` parameter) holds:

- ``LATEST``: the name of the last complete checkpoint, replaced atomically (``os.replace``);
- ``epoch-NNNN/``: the checkpoint of the end of epoch NNNN: skorch's ``save_params`` files
  (``params.pt``, the network's weights; ``optimizer.pt``, AdamW's state; ``history.json``),
  ``random.pt`` (torch's random states), ``tokenizer.json`` (a tokenizer trained in ``fit``),
  ``best-<i>.pt`` (the best weights an ``EarlyStopping`` callback holds, when they are not the last
  epoch's) and ``manifest.json``, written last: the fingerprint of the fit (its parameters and a
  SHA-256 of its training data), the random states and callback state as plain data, and a SHA-256
  of every other file;
- ``.writing-*``: a checkpoint being written; one that a killed process left is ignored, and removed
  by the next checkpoint written.

Each epoch's checkpoint is written into a fresh ``.writing-*`` folder, renamed to ``epoch-NNNN`` once
complete (its files flushed to disk), and only then named in ``LATEST``; the older ones are removed
after. A process killed at any moment leaves ``LATEST`` naming a complete checkpoint, or no ``LATEST``
before the first one. The ``.pt`` files are read with ``torch.load(weights_only=True)``: tensors and
plain data only, nothing else is unpickled.
"""

import contextlib
import copy
import hashlib
import json
import numbers
import os
import pathlib
import re
import shutil
import uuid

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping

from .callbacks import KLAnnealing
from .exceptions import ModelFileError
from .files import file_sha256
from .files import fsync as _fsync

FORMAT_VERSION = 1
LATEST, MANIFEST = "LATEST", "manifest.json"
PARAMS, OPTIMIZER, HISTORY, RANDOM, TOKENIZER = "params.pt", "optimizer.pt", "history.json", "random.pt", "tokenizer.json"
CALLBACK_NAME = "sktextae_checkpoint"  # its name among the net's callbacks

# Parameters that do not change the model a fit trains: left out of the fingerprint. max_epochs is
# compared on its own: a resumed fit may train longer than the one that wrote the checkpoint.
_NOT_FINGERPRINTED = ("checkpoint_dir", "verbose", "callbacks", "inference_batch_size", "max_epochs", "device")
_EPOCH_FOLDER = re.compile(r"epoch-\d{4,}")


class FitCheckpoints:
    """The checkpoints of one ``fit`` call: where they go, the fingerprint they carry, and the checkpoint
    it resumes from (``resume``, a ``SavedCheckpoint``, or None)."""

    def __init__(self, directory, fingerprint, resume, *, tokenizer=None):
        self.directory, self.fingerprint, self.resume = pathlib.Path(directory), fingerprint, resume
        self.tokenizer = tokenizer  # a tokenizers.Tokenizer trained in fit, saved with each checkpoint
        self.fit_rng_state = None  # the fit's numpy RandomState before its first draw, set by _train

    def fit_rng(self, random_state):
        """The fit's random source: the one the checkpoint's fit started from, or a new one."""
        from sklearn.utils import check_random_state

        if self.resume is None:
            return check_random_state(random_state)
        rng = np.random.RandomState()
        rng.set_state(self.resume.fit_rng_state)
        return rng

    def remove(self):
        """Remove every checkpoint (``LATEST`` first: a kill midway leaves nothing to resume from), and
        the folder itself when nothing else is left in it."""
        remove(self.directory)


class SavedCheckpoint:
    """A complete checkpoint read from disk (see ``read``): its files checked against the manifest."""

    def __init__(self, folder, manifest, random_states):
        self.folder, self.manifest, self.random_states = folder, manifest, random_states
        self.epochs = manifest["epochs"]
        state = manifest["state"]
        self.fit_rng_state = (state["fit_rng"][0], np.asarray(state["fit_rng"][1], dtype=np.uint32),
                              *state["fit_rng"][2:])

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
            raise ModelFileError(f"{file}: not a tokenizer ({error}).") from None

    def load_into(self, net):
        """The weights, the optimizer's state and the history, into an initialised net (skorch's
        ``load_params``); the random states and the callbacks' wait for ``on_train_begin``."""
        try:
            net.load_params(f_params=self.folder / PARAMS, f_optimizer=self.folder / OPTIMIZER,
                            f_history=self.folder / HISTORY)
        except (RuntimeError, ValueError, KeyError, OSError) as error:
            raise ModelFileError(f"{self.folder}: the checkpoint does not fit this network ({error}).") from None

    def restore_callbacks(self, net):
        """Put back what the net's callbacks and random sources held at the end of the checkpoint's epoch."""
        state = self.manifest["state"]
        net.shuffle_rng_.bit_generator.state = state["shuffle_rng"]
        torch.set_rng_state(self.random_states["cpu"])
        if self.random_states.get("cuda") is not None and torch.device(net.device).type == "cuda":
            torch.cuda.set_rng_state(self.random_states["cuda"], torch.device(net.device))
        if state["kl_weight"] is not None:
            net.kl_weight = state["kl_weight"]
        callbacks = dict(net.callbacks_)
        for name, saved in state["callbacks"].items():
            callback = callbacks.get(name)
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
    during the ``fit`` call that started it, never in ``partial_fit``. It is the last callback before
    the log, so that the history it saves holds every callback's record of the epoch. An epoch that
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

    def stop(self):
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

    Raises ValueError when the checkpoint is of another fit (its fingerprint differs) or has trained
    more than ``max_epochs`` epochs, and ``ModelFileError`` naming the file when it is damaged.
    """
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint_dir={str(directory)!r} is a file: pass a folder (it is created if missing).")
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{pointer}: unreadable ({error}); delete {directory} to start afresh.") from None
    folder = directory / name
    if not _EPOCH_FOLDER.fullmatch(name) or not folder.is_dir():
        raise ModelFileError(f"{pointer}: names no checkpoint folder here ({name[:60]!r}); delete {directory} to "
                             f"start afresh.")
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
        if not file.is_file():
            raise ModelFileError(f"{file}: missing; {MANIFEST} lists it. Delete {directory} to start afresh.")
        if file_sha256(file) != digest:
            raise ModelFileError(f"{file}: damaged since it was written (its SHA-256 does not match {MANIFEST}). "
                                 f"Delete {directory} to start afresh.")
    return SavedCheckpoint(folder, manifest, _torch_load(folder / RANDOM, "cpu"))


def _read_manifest(file, directory):
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{file}: missing; every complete checkpoint holds one. Delete {directory} to start "
                             f"afresh.") from None
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{file}: not JSON ({error}). Delete {directory} to start afresh.") from None
    fields = {"format_version": int, "epochs": int, "fingerprint": dict, "files": dict, "state": dict}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(key), kind) for key, kind in fields.items()):
        raise ModelFileError(f"{file}: not a checkpoint manifest (it needs {', '.join(fields)}). Delete {directory} "
                             f"to start afresh.")
    if manifest["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{file}: checkpoint format {manifest['format_version']} is newer than this sktextae "
                             f"reads ({FORMAT_VERSION}): upgrade sktextae, or delete {directory} to start afresh.")
    if not {RANDOM, PARAMS, OPTIMIZER, HISTORY} <= set(manifest["files"]):
        raise ModelFileError(f"{file}: lists {sorted(manifest['files'])}, not every file a checkpoint holds. Delete "
                             f"{directory} to start afresh.")
    return manifest


def _torch_load(file, device):
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds (RuntimeError, UnpicklingError, EOFError, ...)
        raise ModelFileError(f"{file}: not a readable checkpoint file ({error}).") from None


# ---------------------------------------------------------------------------------------------- writing

def write(checkpoints, net):
    """Write the checkpoint of the epoch that just ended, atomically (see the module's docstring)."""
    directory = checkpoints.directory
    epoch = len(net.history)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".writing-{epoch:04d}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        net.save_params(f_params=temporary / PARAMS, f_optimizer=temporary / OPTIMIZER, f_history=temporary / HISTORY)
        cuda = torch.device(net.device)
        torch.save({"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(cuda) if cuda.type == "cuda" else None}, temporary / RANDOM)
        if checkpoints.tokenizer is not None:
            (temporary / TOKENIZER).write_text(checkpoints.tokenizer.to_str(), encoding="utf-8")
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
                        torch.save(callback.best_model_weights_, temporary / best)
                state["callbacks"][name] = {"misses_": int(callback.misses_),
                                            "dynamic_threshold_": float(callback.dynamic_threshold_),
                                            "best_epoch_": int(callback.best_epoch_), "best_weights": best}
        files = sorted(path.name for path in temporary.iterdir())
        manifest = {"format_version": FORMAT_VERSION, "epochs": epoch, "fingerprint": checkpoints.fingerprint,
                    "state": state, "files": {name: file_sha256(temporary / name) for name in files}}
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        for name in [*files, MANIFEST]:
            _fsync(temporary / name)
        final = directory / f"epoch-{epoch:04d}"
        if final.exists():  # left by a process killed before it named it in LATEST: never the LATEST one
            shutil.rmtree(final)
        os.replace(temporary, final)
        _fsync(directory)
        _replace_text(directory / LATEST, final.name)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    for path in directory.iterdir():  # the older checkpoints, and what killed writes left
        if path.name != final.name and path.is_dir() and (_EPOCH_FOLDER.fullmatch(path.name)
                                                          or path.name.startswith(".writing-")):
            shutil.rmtree(path, ignore_errors=True)


def remove(directory):
    """Remove the checkpoints in ``directory`` (what this module writes there, nothing else), and the
    folder when it is left empty."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return
    with contextlib.suppress(FileNotFoundError):
        (directory / LATEST).unlink()
    for path in directory.iterdir():
        if path.is_dir() and (_EPOCH_FOLDER.fullmatch(path.name) or path.name.startswith(".writing-")):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{LATEST}."):
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if empty


def _replace_text(file, text):
    temporary = file.parent / f".{file.name}.{uuid.uuid4().hex[:8]}"
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        _fsync(temporary)
        os.replace(temporary, file)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync(file.parent)


def _json_rng_state(state):
    name, keys, position, has_gauss, cached = state
    return [name, np.asarray(keys).tolist(), int(position), int(has_gauss), float(cached)]

