"""One checkpoint's files (the folder format is described in ``sktextae.checkpoint``): their names, the
fit's fingerprint that the manifest records (``fingerprint``), writing them (``write_checkpoint``, the manifest last), and reading back what a checkpoint holds, checked
in full before any of it is used: the manifest against the schema of what ``write_checkpoint`` produces,
the random states against what torch keeps.

It imports nothing of ``sktextae.checkpoint`` (which imports it), so that imports go one way.
"""

import hashlib
import json
import math
import numbers
import os
import re

import numpy as np
import torch
from skorch.callbacks import EarlyStopping

from .callbacks import KLAnnealing
from .exceptions import ModelFileError
from .files import file_sha256, texts_sha256

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARAMS, OPTIMIZER, HISTORY, RANDOM, TOKENIZER = "params.pt", "optimizer.pt", "history.json", "random.pt", "tokenizer.json"

EPOCH_FOLDER = re.compile(r"epoch-(\d{4,9})(?:-[0-9a-f]{8})?")
_BEST_WEIGHTS = re.compile(r"best-\d{1,4}\.pt")
_REQUIRED_FILES = (PARAMS, OPTIMIZER, HISTORY, RANDOM)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Far beyond what write() produces (a manifest is about 10 kB, an index a few hundred bytes): bounds
# what a crafted file makes us read before it is checked.
_MAX_JSON_BYTES = 16 * 1024 * 1024
_MAX_NESTING = 32  # of a fingerprinted parameter's value (a dict parameter is a list of [key, value] lists)
_MAX_COUNT = 2**62  # epochs, steps, texts: any real count is far below


# ---------------------------------------------------------------------------------------------- writing

def write_checkpoint(folder, checkpoints, net, epoch):
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


def _json_rng_state(state):
    name, keys, position, has_gauss, cached = state
    return [name, np.asarray(keys).tolist(), int(position), int(has_gauss), float(cached)]


# ---------------------------------------------------------------------------------------------- reading

# ---------------------------------------------------------------------------------------------- fingerprint

# Parameters that do not change the model a fit trains: left out of the fingerprint. max_epochs is
# compared on its own: a resumed fit may train longer than the one that wrote the checkpoint.
_NOT_FINGERPRINTED = ("checkpoint_dir", "verbose", "callbacks", "inference_batch_size", "max_epochs", "device")


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
    return {"config": config, "data": texts_sha256(texts, labels), "n_texts": len(texts)}


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


def fingerprint_differences(saved, current):
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


def load_json(file, directory, *, missing):
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


def read_manifest(file, directory):
    manifest = load_json(file, directory, missing="every complete checkpoint holds one")
    try:
        _check_manifest(manifest, folder=file.parent.name)
    except Invalid as problem:
        raise ModelFileError(f"{file}: {problem}. Delete {directory} to start afresh.") from None
    return manifest


def read_random_states(file, directory):
    states = torch_load(file, "cpu")
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


def torch_load(file, device):
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds (RuntimeError, UnpicklingError, EOFError, ...)
        raise ModelFileError(f"{file}: not a readable checkpoint file ({error}).") from None


# ---------------------------------------------------------------------------------------------- the schema
# What write() produces, checked in full before any of a manifest is used: a field of the wrong type,
# out of its range or unknown raises Invalid naming it, which the reader turns into a ModelFileError
# naming the file.

class Invalid(Exception):
    def __init__(self, field, problem):
        super().__init__(f"field {field} {problem}" if field else problem)


def describe(value):
    """A short description of a value read from a file (never a long or deeply nested repr)."""
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_object(value, field, keys):
    if not isinstance(value, dict):
        raise Invalid(field, f"must be an object of {', '.join(keys)}, not {describe(value)}")
    missing = [key for key in keys if key not in value]
    if missing:
        raise Invalid(field, f"lacks {', '.join(missing)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise Invalid(f"{field}.{unknown[0][:40]}" if field else unknown[0][:40], "is not one a checkpoint holds")


def check_int(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, f"must be an integer from {low} to {high}, not {describe(value)}")


def _check_real(value, field, *, low=-math.inf, infinite=False):
    real = isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)
                                        and abs(value) <= 2**53)
    if not real or math.isnan(value) or (math.isinf(value) and not infinite) or value < low:
        kind = "a number" if infinite else "a finite number"
        raise Invalid(field, f"must be {kind}{f' >= {low}' if low > -math.inf else ''}, not {describe(value)}")


def _check_plain(value, field, depth=0):
    """A fingerprinted parameter value, as ``_canonical`` makes it: null, booleans,
    numbers, strings and lists of them, nested at most ``_MAX_NESTING`` deep."""
    if depth > _MAX_NESTING:
        raise Invalid(field, f"is nested more than {_MAX_NESTING} deep")
    if isinstance(value, list):
        for item in value:
            _check_plain(item, field, depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise Invalid(field, f"must hold only null, booleans, numbers, strings and lists, not {describe(value)}")


def _check_manifest(manifest, *, folder):
    keys = ("format_version", "epochs", "fingerprint", "files", "state")
    if not isinstance(manifest, dict) or any(key not in manifest for key in keys):
        raise Invalid("", f"not a checkpoint manifest (it needs {', '.join(keys)})")
    version = manifest["format_version"]
    check_int(version, "format_version", 1, _MAX_COUNT)
    if version > FORMAT_VERSION:
        raise Invalid("format_version", f"is {version}: checkpoint format {version} is newer than this sktextae "
                                         f"reads ({FORMAT_VERSION}); upgrade sktextae")
    check_object(manifest, "", keys)
    epochs = manifest["epochs"]
    check_int(epochs, "epochs", 1, _MAX_COUNT)
    named = EPOCH_FOLDER.fullmatch(folder)
    if named is not None and int(named.group(1)) != epochs:
        raise Invalid("epochs", f"is {epochs}, but the folder {folder!r} holds the checkpoint of epoch "
                                 f"{int(named.group(1))}")
    _check_fingerprint(manifest["fingerprint"])
    files = manifest["files"]
    if not isinstance(files, dict):
        raise Invalid("files", f"must be an object of file names and SHA-256s, not {describe(files)}")
    for name, digest in files.items():
        if name not in (*_REQUIRED_FILES, TOKENIZER) and not _BEST_WEIGHTS.fullmatch(name):
            raise Invalid(f"files.{name[:40]}", "is not a file a checkpoint holds")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise Invalid(f"files.{name}", f"must be a SHA-256 (64 lowercase hex digits), not {describe(digest)}")
    if not set(_REQUIRED_FILES) <= set(files):
        raise Invalid("files", f"lists {sorted(files)}, not every file a checkpoint holds")
    _check_state(manifest["state"], epochs=epochs, files=files)


def _check_fingerprint(fingerprint):
    check_object(fingerprint, "fingerprint", ("config", "data", "n_texts"))
    config = fingerprint["config"]
    if not isinstance(config, dict):
        raise Invalid("fingerprint.config", f"must be an object of parameters, not {describe(config)}")
    for name, value in config.items():
        _check_plain(value, f"fingerprint.config.{name[:40]}")
    if not isinstance(fingerprint["data"], str) or not _SHA256.fullmatch(fingerprint["data"]):
        raise Invalid("fingerprint.data", f"must be a SHA-256, not {describe(fingerprint['data'])}")
    check_int(fingerprint["n_texts"], "fingerprint.n_texts", 0, _MAX_COUNT)


def _check_state(state, *, epochs, files):
    check_object(state, "state", ("fit_rng", "shuffle_rng", "kl_weight", "callbacks"))
    # numpy's RandomState.get_state(): MT19937, its key of 624 uint32, the position in it (0 to 624),
    # and the cached Gaussian.
    fit_rng = state["fit_rng"]
    if not isinstance(fit_rng, list) or len(fit_rng) != 5 or fit_rng[0] != "MT19937":
        raise Invalid("state.fit_rng", f"must be a RandomState's state ['MT19937', key, position, has_gauss, "
                                        f"cached_gaussian], not {describe(fit_rng)}")
    if not isinstance(fit_rng[1], list) or len(fit_rng[1]) != 624:
        raise Invalid("state.fit_rng[1]", f"must be MT19937's key of 624 integers, not {describe(fit_rng[1])}")
    for word in fit_rng[1]:
        check_int(word, "state.fit_rng[1]", 0, 2**32 - 1)
    check_int(fit_rng[2], "state.fit_rng[2]", 0, 624)
    check_int(fit_rng[3], "state.fit_rng[3]", 0, 1)
    _check_real(fit_rng[4], "state.fit_rng[4]")
    # A numpy Generator's bit_generator.state: default_rng's PCG64, its 128-bit state and increment.
    shuffle = state["shuffle_rng"]
    check_object(shuffle, "state.shuffle_rng", ("bit_generator", "state", "has_uint32", "uinteger"))
    if shuffle["bit_generator"] != "PCG64":
        raise Invalid("state.shuffle_rng.bit_generator", f"must be 'PCG64', not {describe(shuffle['bit_generator'])}")
    check_object(shuffle["state"], "state.shuffle_rng.state", ("state", "inc"))
    for key in ("state", "inc"):
        check_int(shuffle["state"][key], f"state.shuffle_rng.state.{key}", 0, 2**128 - 1)
    check_int(shuffle["has_uint32"], "state.shuffle_rng.has_uint32", 0, 1)
    check_int(shuffle["uinteger"], "state.shuffle_rng.uinteger", 0, 2**32 - 1)
    _check_real(state["kl_weight"], "state.kl_weight", low=0.0)
    callbacks = state["callbacks"]
    if not isinstance(callbacks, dict):
        raise Invalid("state.callbacks", f"must be an object of callback states, not {describe(callbacks)}")
    for name, saved in callbacks.items():
        field = f"state.callbacks.{name[:40]}"
        if isinstance(saved, dict) and "steps_" in saved:  # a KLAnnealing's
            check_object(saved, field, ("steps_",))
            check_int(saved["steps_"], f"{field}.steps_", 0, _MAX_COUNT)
            continue
        check_object(saved, field, ("misses_", "dynamic_threshold_", "best_epoch_", "best_weights"))  # EarlyStopping
        check_int(saved["misses_"], f"{field}.misses_", 0, _MAX_COUNT)
        _check_real(saved["dynamic_threshold_"], f"{field}.dynamic_threshold_", infinite=True)
        check_int(saved["best_epoch_"], f"{field}.best_epoch_", 0, epochs)
        best = saved["best_weights"]
        if best is not None and best != PARAMS and not (isinstance(best, str) and _BEST_WEIGHTS.fullmatch(best)
                                                        and best in files):
            raise Invalid(f"{field}.best_weights", f"must be null, {PARAMS!r} or a best-<i>.pt file that files "
                                                    f"lists, not {describe(best)}")
