"""Saving a fitted estimator to a folder of plain files, and loading it back without pickle.

A saved model is a folder:

- ``config.json``: the format version, the estimator's class (a name from ``registry.ESTIMATORS``,
  never an import path), its parameters, its fitted non-tensor attributes, the network's shape
  (``network.NetworkSpec``), the vocabulary, the versions of the packages that wrote it and a SHA-256
  of every other file (and of itself);
- ``tokenizer.json``: the ``tokenizers.Tokenizer`` (``Tokenizer.to_str()``);
- ``model.safetensors``: the weights of the uncompiled network (a tensor that several names share,
  such as tied embeddings, is stored once);
- ``encoder/config.json``: with a pretrained encoder only, its Hugging Face configuration, from which
  the encoder is rebuilt, so that the folder needs nothing outside itself.

A folder is untrusted input: the SHA-256 list catches damage and careless edits, not an attacker, who
can recompute it. So loading reads JSON and safetensors only (nothing is unpickled, no name read from
a file is imported, nothing is fetched from the network), checks every field of ``config.json`` (types,
ranges, allowed keys, agreement between fields) and the tensor shapes in the safetensors header
against the network the config describes before allocating it, and raises :class:`ModelFileError`
naming the file and the field for any problem, before any estimator is returned.
"""

import hashlib
import json
import os
import pathlib
import warnings

import torch

from . import data_parallel as distributed_job
from . import network
from ._sklearn_private import get_param_names, output_config
from ._version import __version__
from .device import fork_rng_devices, resolve_device
from .exceptions import ModelFileError, ModelVersionWarning
from .files import atomic_folder, check_writable_target, file_sha256, safetensors_header
from .registry import ESTIMATORS
from .saved_config import (
    CONFIG,
    ENCODER_CONFIG,
    FORMAT_VERSION,
    MAX_CONFIG_BYTES,
    TOKENIZER,
    WEIGHTS,
    config_checksum,
    estimator_from_config,
    first_line,
    fitted_for_file,
    jsonable,
    network_for_file,
    network_from_config,
    params_for_file,
    read_config,
    read_json,
    versions,
    vocabulary_for_file,
)

_FOLDER_ENTRIES = {CONFIG, TOKENIZER, WEIGHTS, "encoder"}  # all that save() writes in a folder


def classes():
    """The estimator classes a folder may hold, by the name ``config.json`` records."""
    return dict(ESTIMATORS)


# ---------------------------------------------------------------------------------------------- saving


def save(estimator, path, *, overwrite=False):
    """Write a fitted estimator to the folder ``path``; see ``TextAutoencoder.save``. In the job that fitted
    it with ``data_parallel=True``, rank 0 writes it, and the other processes return once it is written."""
    if getattr(estimator, "data_parallel", False) and distributed_job.active():
        written = distributed_job.written_by_rank_0(lambda: _save(estimator, path, overwrite=overwrite),
                                                    f"the model to {str(path)!r}")
        return pathlib.Path(path) if written is None else written
    return _save(estimator, path, overwrite=overwrite)


def _save(estimator, path, *, overwrite):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise ValueError(f"save() writes the estimators of sktextae ({', '.join(ESTIMATORS)}), not a "
                         f"{type(estimator).__module__}.{type(estimator).__qualname__}: pickle it instead.")
    path = check_writable_target(path, what="save()")
    replace = _check_target(path, overwrite=overwrite)
    module = network.uncompiled(estimator.net_.module_)
    encoder = network.autoencoder_of(module).encoder
    files = {TOKENIZER: estimator.tokenizer_.to_str().encode("utf-8")}
    pretrained = None
    if isinstance(encoder, network.PretrainedEncoder):
        pretrained = network.saved_encoder_fields(encoder)
        files[ENCODER_CONFIG] = encoder.model.config.to_json_string(use_diff=False).encode("utf-8")
    params, notes = params_for_file(estimator)
    config = {
        "format_version": FORMAT_VERSION,
        "estimator": name,
        "params": params,
        "notes": notes,
        "network": network_for_file(estimator),
        "pretrained_encoder": pretrained,
        "fitted": fitted_for_file(estimator),
        "vocabulary": vocabulary_for_file(estimator.vocabulary_),
        "output_config": jsonable(output_config(estimator), "set_output configuration"),
        "versions": versions(),
    }
    with atomic_folder(path, replace=replace) as temporary:
        for relative, data in files.items():
            (temporary / relative).parent.mkdir(parents=True, exist_ok=True)
            (temporary / relative).write_bytes(data)
        _save_weights(module, temporary / WEIGHTS)
        config["files"] = {relative: file_sha256(temporary / relative) for relative in sorted([*files, WEIGHTS])}
        config["config_sha256"] = config_checksum(config)
        (temporary / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _check_target(path, *, overwrite):
    """Whether ``path`` holds a saved model to replace (only with ``overwrite``); refuse anything else
    that is there. Only a folder that save() wrote is ever replaced: its config.json checks out and it
    holds nothing but the files save() writes."""
    if path.is_symlink():
        raise ValueError(f"{str(path)!r} is a symbolic link: save() never replaces one. Pass the folder it points "
                         f"to ({os.path.realpath(path)!r}) or another path.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file: save() writes a folder. Pass a folder path.")
    if not path.is_dir() or not any(path.iterdir()):
        return False
    if not overwrite:
        raise ValueError(f"{str(path)!r} exists and is not empty: pass overwrite=True to replace a saved model, "
                         f"or another path.")
    problem = _not_a_saved_model(path)
    if problem:
        raise ValueError(f"{str(path)!r} is not a model folder that save() wrote ({problem}): overwrite=True only "
                         f"replaces those, so this one is left as it is. Pass another path, or remove it yourself.")
    return True


def _not_a_saved_model(path):
    """Why the folder ``path`` is not one that save() wrote, or None when it is."""
    entries = {entry.name for entry in path.iterdir()}
    others = sorted(entries - _FOLDER_ENTRIES)
    if others:
        return f"it also holds {others[:5]}"
    encoder = path / "encoder"
    if "encoder" in entries and (encoder.is_symlink() or not encoder.is_dir()
                                 or {entry.name for entry in encoder.iterdir()} != {"config.json"}):
        return "its encoder/ holds more than the config.json that save() writes"
    if any((path / name).is_symlink() for name in entries):
        return "it holds symbolic links"
    try:
        config = read_json(path / CONFIG)
    except ModelFileError as error:
        return str(error)
    if not isinstance(config, dict) or config.get("estimator") not in ESTIMATORS \
            or config.get("config_sha256") != config_checksum(config):
        return f"its {CONFIG} is not one that save() wrote"
    return None


def _save_weights(module, file):
    """The state dict on the CPU, each shared tensor (tied or shared embeddings) under its first name.

    Serialised to bytes and written with ``open``, so that the file gets the umask's mode (safetensors'
    ``save_file`` creates it 0600)."""
    from safetensors.torch import save

    tensors = {}
    for names in _tensor_groups(module):
        tensors[names[0]] = module.state_dict()[names[0]].detach().to("cpu").contiguous()
    file.write_bytes(save(tensors, metadata={"format": "pt"}))


def _tensor_groups(module):
    """The names of the module's state, grouped by tensor (tied weights share one), each group sorted."""
    groups = {}
    for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
        key = id(tensor) if tensor.numel() else ("empty", name)
        groups.setdefault(key, []).append(name)
    return list(groups.values())


# --------------------------------------------------------------------------------------------- loading


def load(path, *, device="auto", expected=None):
    """The estimator saved in the folder ``path``; see ``sktextae.load``."""
    from tokenizers import Tokenizer

    device = resolve_device(device)  # the caller's argument: a plain ValueError, not the folder's fault
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise ModelFileError(f"{str(folder)!r}: no such folder (a model saved with save()).")
    file = folder / CONFIG
    config = read_config(file)
    cls = ESTIMATORS[config["estimator"]]
    if expected is not None and cls is not expected:
        raise ModelFileError(f"{file}: the folder holds a {cls.__name__}, not a {expected.__name__}: "
                             f"load it with sktextae.load() or {cls.__name__}.load().")
    data = {relative: _read_checked(folder, relative, digest) for relative, digest in config["files"].items()
            if relative != WEIGHTS}
    _check_digest(folder / WEIGHTS, config["files"][WEIGHTS])
    try:
        tokenizer = Tokenizer.from_str(data[TOKENIZER].decode("utf-8"))
    except Exception as error:  # tokenizers raises its own Exception subclass
        raise ModelFileError(f"{folder / TOKENIZER}: not a tokenizer ({first_line(error)}).") from None
    tokenizer.post_processor = None  # as pretrained models' are now read (an earlier folder's template is never used)
    estimator = estimator_from_config(cls, config, tokenizer, file)
    spec, head, saved_encoder = network_from_config(estimator, config, data.get(ENCODER_CONFIG), folder)
    weights = folder / WEIGHTS
    try:
        header = safetensors_header(weights)
    except (ValueError, OSError) as error:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({error}).") from None
    _check_shapes(spec, estimator, saved_encoder, header, weights)
    estimator.device_ = device
    try:
        net = network.build_net(spec, estimator.get_params(deep=False), device=device,
                                vocabulary=estimator.vocabulary_, decoder_tokens=estimator.vocabulary_.decoder_tokens,
                                saved_encoder=saved_encoder, **head)
        with torch.random.fork_rng(devices=fork_rng_devices(device)):  # random weights, replaced below
            net.initialize()
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, ImportError) as error:
        raise ModelFileError(f"{file}: the network it describes cannot be built ({first_line(error)}).") from None
    _load_weights(net, weights)
    estimator.net_ = net
    return estimator


def _read_checked(folder, relative, digest):
    file = folder / relative
    if file.is_symlink() or not file.is_file():
        raise ModelFileError(f"{file}: missing (or not a plain file); {CONFIG} lists it among the model's files.")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{file}: {file.stat().st_size} bytes, more than a saved model's {relative} holds.")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelFileError(f"{file}: damaged or replaced since save() wrote it (its SHA-256 does not match the "
                             f"one in {CONFIG}).")
    return data


def _check_digest(file, digest):
    if file.is_symlink() or not file.is_file():
        raise ModelFileError(f"{file}: missing (or not a plain file); {CONFIG} lists it among the model's files.")
    if file_sha256(file) != digest:
        raise ModelFileError(f"{file}: damaged or replaced since save() wrote it (its SHA-256 does not match the "
                             f"one in {CONFIG}).")


def _check_shapes(spec, estimator, saved_encoder, header, file):
    """Build the network on the meta device (shapes, no memory) and check that the weights file holds
    exactly its tensors, with their shapes and dtypes, before the real network is allocated: a tiny
    folder cannot make loading allocate more than its weights file holds."""
    try:
        with torch.device("meta"):
            module = network.build_module(spec, decoder_tokens=estimator.vocabulary_.decoder_tokens,
                                          saved_encoder=saved_encoder)
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, ImportError) as error:
        raise ModelFileError(f"{file.parent / CONFIG}: the network it describes cannot be built "
                             f"({first_line(error)}).") from None
    _match_tensors(module, {name: (dtype, shape) for name, (dtype, shape) in header.items()}, file)


_DTYPE_NAMES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL"}


def _match_tensors(module, saved, file):
    """Check the saved tensors ``{name: (safetensors dtype, shape)}`` against the module's state: no unknown
    name, every tensor present under one of its names, the same shape and dtype."""
    state = module.state_dict(keep_vars=True)
    unknown = sorted(set(saved) - set(state))
    if unknown:
        raise ModelFileError(f"{file}: tensors {unknown[:5]} are not in the network that {CONFIG} describes.")
    for names in _tensor_groups(module):
        present = [name for name in names if name in saved]
        if not present:
            raise ModelFileError(f"{file}: tensor {names[0]!r} is missing.")
        want = state[names[0]]
        want_dtype, want_shape = _DTYPE_NAMES.get(want.dtype, str(want.dtype)), tuple(want.shape)
        for name in present:
            dtype, shape = saved[name]
            if tuple(shape) != want_shape or dtype != want_dtype:
                raise ModelFileError(f"{file}: tensor {name!r} is {dtype} {tuple(shape)}, but the network that "
                                     f"{CONFIG} describes has {want_dtype} {want_shape}.")


def _load_weights(net, file):
    """Load model.safetensors into the initialised net (its names and shapes already checked)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{file}: not a readable safetensors file ({first_line(error)}).") from None
    module = network.uncompiled(net.module_)
    _match_tensors(module, {name: (_DTYPE_NAMES.get(t.dtype, str(t.dtype)), tuple(t.shape))
                            for name, t in saved.items()}, file)
    state = {}
    for names in _tensor_groups(module):
        present = next(name for name in names if name in saved)
        state.update({name: saved[present] for name in names})
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{file}: the weights do not fit the network ({first_line(error)}).") from None


# ------------------------------------------------------------------------------------------- pickling


def check_pickle_state(estimator, state):
    """For ``__setstate__``: warn when a pickle comes from another sktextae version, and refuse one that
    lacks fields this version needs (rather than failing later with an AttributeError)."""
    version = state.pop("_sktextae_version", None)
    if "net_" in state and "max_length_" in state:
        state.setdefault("decode_length_", state["max_length_"])  # pickled before it existed
    needed = list(get_param_names(type(estimator)))
    if "net_" in state:
        needed += ["net_", "vocabulary_", "tokenizer_", *type(estimator)._fitted_attributes]
    missing = [field for field in needed if field not in state]
    if missing:
        raise ModelFileError(f"This pickled {type(estimator).__name__} was written by sktextae "
                             f"{version or 'before 0.3'} and lacks {missing}, which sktextae {__version__} needs: "
                             f"load it with the version that wrote it and save() it, or refit.")
    if version != __version__:
        warnings.warn(f"This {type(estimator).__name__} was pickled by sktextae {version or 'before 0.3'} and is "
                      f"loaded by sktextae {__version__}: it may not work as it did. Refit it, or use "
                      f"save()/sktextae.load(), whose format is versioned.", ModelVersionWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------- helpers
