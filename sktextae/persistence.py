"""Saving a fitted estimator to a folder of plain files, and loading it back without pickle.

A saved model is a folder:

- ``config.json``: the format version, the estimator's class (a name from :data:`CLASSES`, never an
  import path), its parameters, its fitted non-tensor attributes, the network's shape, the vocabulary,
  the versions of the packages that wrote it and a SHA-256 of every other file (and of itself);
- ``tokenizer.json``: the ``tokenizers.Tokenizer`` (``Tokenizer.to_str()``);
- ``model.safetensors``: the weights of the uncompiled network (a tensor that several names share,
  such as tied embeddings, is stored once);
- ``encoder/config.json``: with a pretrained encoder only, its Hugging Face configuration, from which
  the encoder is rebuilt, so that the folder needs nothing outside itself.

Loading reads JSON and safetensors only: nothing is unpickled and no name read from a file is imported.
Any problem with a folder (a missing or damaged file, an edited config, weights that disagree with it,
a newer format) raises :class:`ModelFileError` naming the file, before any estimator is returned.
"""

import contextlib
import functools
import hashlib
import json
import numbers
import os
import pathlib
import re
import shutil
import types
import uuid
import warnings

import numpy as np
import torch

from ._version import __version__
from .device import resolve_device
from .exceptions import ModelFileError, ModelVersionWarning
from .files import file_sha256

FORMAT_VERSION = 1
CONFIG, TOKENIZER, WEIGHTS, ENCODER_CONFIG = "config.json", "tokenizer.json", "model.safetensors", "encoder/config.json"

# The network's shape as _build_net passes it to the module factory (its functools.partial's keywords).
_NETWORK_KEYS = ("encoder", "decoder", "vocab_size", "decoder_vocab_size", "latent_dim", "embedding_dim", "hidden_dim",
                 "num_layers", "num_heads", "dropout", "max_length", "variational", "n_outputs", "freeze_encoder")
# Fitted attributes besides the network and the vocabulary; each class's own ones (see _fitted_attributes).
_FITTED = ("device_", "n_truncated_", "max_length_", "bag_size_")
_FITTED_BY_CLASS = {"TextAutoencoder": (), "TextAutoencoderClassifier": ("classes_", "n_labelled_"),
                    "TextAutoencoderRegressor": ("target_mean_", "target_scale_", "n_labelled_")}
_CLASS_DTYPE_KINDS = "biufUO"  # the numpy dtype kinds classes_ may have in a file


def classes():
    """The estimator classes a folder may hold, by the name ``config.json`` records."""
    from .estimator import TextAutoencoder
    from .supervised import TextAutoencoderClassifier, TextAutoencoderRegressor

    return {cls.__name__: cls for cls in (TextAutoencoder, TextAutoencoderClassifier, TextAutoencoderRegressor)}


# ---------------------------------------------------------------------------------------------- saving

def save(estimator, path, *, overwrite=False):
    """Write a fitted estimator to the folder ``path``; see ``TextAutoencoder.save``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    name = type(estimator).__name__
    if classes().get(name) is not type(estimator):
        raise ValueError(f"save() writes the estimators of sktextae ({', '.join(classes())}), not a "
                         f"{type(estimator).__module__}.{type(estimator).__qualname__}: pickle it instead.")
    path = pathlib.Path(path)
    _check_target(path, overwrite=overwrite)
    module = _uncompiled(estimator.net_.module_)
    encoder = _autoencoder(module).encoder
    files = {TOKENIZER: estimator.tokenizer_.to_str().encode("utf-8")}
    pretrained = None
    if _is_pretrained_module(encoder):
        pretrained, files[ENCODER_CONFIG] = _pretrained_spec(encoder)
    params, notes = _params_for_file(estimator)
    config = {
        "format_version": FORMAT_VERSION,
        "estimator": name,
        "params": params,
        "notes": notes,
        "network": _network_for_file(estimator),
        "pretrained_encoder": pretrained,
        "fitted": _fitted_for_file(estimator),
        "vocabulary": _vocabulary_for_file(estimator.vocabulary_),
        "output_config": _jsonable(getattr(estimator, "_sklearn_output_config", None), "set_output configuration"),
        "versions": _versions(),
    }
    temporary = path.parent / f".{path.name}.saving-{uuid.uuid4().hex[:8]}"
    temporary.mkdir(parents=True)
    try:
        for relative, data in files.items():
            (temporary / relative).parent.mkdir(parents=True, exist_ok=True)
            (temporary / relative).write_bytes(data)
        _save_weights(module, temporary / WEIGHTS)
        config["files"] = {relative: file_sha256(temporary / relative) for relative in sorted([*files, WEIGHTS])}
        config["config_sha256"] = _config_checksum(config)
        (temporary / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _move_into_place(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path


def _check_target(path, *, overwrite):
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file: save() writes a folder. Pass a folder path.")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ValueError(f"{str(path)!r} exists and is not empty: pass overwrite=True to replace a saved model, "
                             f"or another path.")
        if not (path / CONFIG).is_file():
            raise ValueError(f"{str(path)!r} is not empty and holds no saved model ({CONFIG}): overwrite=True only "
                             f"replaces a folder that save() wrote, so this one is left as it is.")


def _move_into_place(temporary, path):
    """``os.replace`` the finished folder onto ``path``: a save killed before it leaves only a hidden sibling."""
    old = None
    if path.is_dir() and any(path.iterdir()):  # a saved model, replaced (checked by _check_target)
        old = path.parent / f".{path.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
    elif path.is_dir():
        path.rmdir()
    os.replace(temporary, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _params_for_file(estimator):
    """``get_params(deep=False)`` as JSON, and a note of what could not be stored.

    ``callbacks`` and a ``RandomState`` instance as ``random_state`` only matter to a later ``fit``, and
    are arbitrary Python objects: they are stored as None, recorded in the notes, with a warning.
    ``pretrained=`` (supervised estimators) is only read by ``fit``; the network it started is saved.
    """
    params, notes = estimator.get_params(deep=False), {"dropped_params": {}, "pretrained_given": False}
    if params.get("callbacks") is not None:
        notes["dropped_params"]["callbacks"] = f"{len(params['callbacks'])} skorch callback(s), stored as None"
        params["callbacks"] = None
    if isinstance(params.get("random_state"), np.random.RandomState):
        notes["dropped_params"]["random_state"] = "a numpy RandomState instance, stored as None"
        params["random_state"] = None
    if isinstance(params.get("checkpoint_dir"), os.PathLike):
        params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])  # a pathlib.Path, stored as its str
    if "pretrained" in params:
        notes["pretrained_given"] = params["pretrained"] is not None
        params["pretrained"] = None
    if notes["dropped_params"]:
        warnings.warn(f"save() stores {', '.join(notes['dropped_params'])} as None: they only matter to a later "
                      f"fit, and are not plain data. Set them again after loading to refit the same way.",
                      UserWarning, stacklevel=3)
    return {name: _jsonable(value, f"parameter {name}") for name, value in params.items()}, notes


def _network_for_file(estimator):
    factory = estimator.net_.module
    if not isinstance(factory, functools.partial):
        raise ValueError("save() needs the network factory that fit() sets (net_.module); this one was replaced.")
    network = {key: factory.keywords[key] for key in _NETWORK_KEYS}
    network.update(task=estimator.net_.task, reconstruction_weight=estimator.net_.reconstruction_weight,
                   class_weight=estimator.net_.class_weight)
    return {key: _jsonable(value, f"the network's {key}") for key, value in network.items()}


def _fitted_for_file(estimator):
    fitted = {name: _jsonable(getattr(estimator, name), name) for name in _FITTED}
    for name in _FITTED_BY_CLASS[type(estimator).__name__]:
        value = getattr(estimator, name)
        if name == "classes_":
            if value.dtype.kind not in _CLASS_DTYPE_KINDS:
                raise ValueError(f"classes_ of dtype {value.dtype} cannot be saved: use int, str or float labels.")
            value = {"dtype": value.dtype.str if value.dtype.kind != "O" else "object",
                     "values": [_jsonable(label, "a class label") for label in value.tolist()]}
        elif name.startswith("target_"):
            value = {"shape": list(np.shape(value)), "values": np.asarray(value, dtype=np.float64).tolist()}
        else:
            value = _jsonable(value, name)
        fitted[name] = value
    return fitted


def _vocabulary_for_file(vocabulary):
    return {"encoder_prefix": [int(i) for i in vocabulary.encoder_prefix],
            "encoder_suffix": [int(i) for i in vocabulary.encoder_suffix],
            "decoder_tokens": None if vocabulary.decoder_tokens is None else
            [int(i) for i in vocabulary.decoder_tokens]}


def _pretrained_spec(encoder):
    """What rebuilds a ``PretrainedEncoder`` without its folder, and its Hugging Face config.json."""
    model = encoder.model
    spec = {"pooling": encoder.pooling, "normalize": bool(encoder.normalize), "pad_token_id": int(encoder.pad_token_id),
            "output_dim": int(encoder.output_dim), "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "attn_implementation": getattr(model.config, "_attn_implementation", None)}
    return spec, model.config.to_json_string(use_diff=False).encode("utf-8")


def _save_weights(module, file):
    """The state dict on the CPU, each shared tensor (tied or shared embeddings) under its first name."""
    from safetensors.torch import save_file

    tensors, seen = {}, {}
    for name, tensor in sorted(module.state_dict().items()):
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
    save_file(tensors, str(file), metadata={"format": "pt"})


def _versions():
    import sklearn
    import tokenizers

    versions = {"sktextae": __version__, "torch": torch.__version__, "tokenizers": tokenizers.__version__,
                "scikit-learn": sklearn.__version__, "transformers": None}
    with contextlib.suppress(ImportError):
        import transformers

        versions["transformers"] = transformers.__version__
    return versions


# --------------------------------------------------------------------------------------------- loading

def load(path, *, device="auto", expected=None):
    """The estimator saved in the folder ``path``; see ``sktextae.load``."""
    from tokenizers import Tokenizer

    folder = pathlib.Path(path)
    device = resolve_device(device)  # the caller's argument: a plain ValueError, not the folder's fault
    if not folder.is_dir():
        raise ModelFileError(f"{str(folder)!r}: no such folder (a model saved with save()).")
    config = _read_config(folder)
    cls = classes()[config["estimator"]]
    if expected is not None and cls is not expected:
        raise ModelFileError(f"{folder / CONFIG}: the folder holds a {cls.__name__}, not a {expected.__name__}: "
                             f"load it with sktextae.load() or {cls.__name__}.load().")
    data = {relative: _read_checked(folder, relative, digest) for relative, digest in config["files"].items()}
    try:
        tokenizer = Tokenizer.from_str(data[TOKENIZER].decode("utf-8"))
    except Exception as error:  # tokenizers raises its own Exception subclass
        raise ModelFileError(f"{folder / TOKENIZER}: not a tokenizer ({error}).") from None
    estimator = _estimator_from_config(cls, config, tokenizer, folder)
    estimator.device_ = device
    net = _build_net(estimator, config, data.get(ENCODER_CONFIG), folder)
    _load_weights(net, folder / WEIGHTS)
    estimator.net_ = net
    return estimator


def _read_config(folder):
    file = folder / CONFIG
    if not file.is_file():
        raise ModelFileError(f"{file}: missing; a folder that save() wrote holds {CONFIG}.")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelFileError(f"{file}: not JSON ({error}).") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{file}: a JSON object expected, got {type(config).__name__}.")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{file}: format_version must be an integer >= 1, got {version!r}.")
    if version > FORMAT_VERSION:
        written_by = (config.get("versions") or {}).get("sktextae") if isinstance(config.get("versions"), dict) else None
        raise ModelFileError(f"{file}: format version {version} (written by sktextae {written_by}) is newer than "
                             f"this sktextae reads ({FORMAT_VERSION}): upgrade sktextae to load it.")
    if config.get("config_sha256") != _config_checksum(config):
        raise ModelFileError(f"{file}: edited or damaged since save() wrote it (its config_sha256 does not match "
                             f"its contents).")
    _check_schema(config, file)
    return config


_SCHEMA = {"format_version": int, "estimator": str, "params": dict, "notes": dict, "network": dict,
           "pretrained_encoder": (dict, type(None)), "fitted": dict, "vocabulary": dict,
           "output_config": (dict, type(None)), "versions": dict, "files": dict, "config_sha256": str}


def _check_schema(config, file):
    missing = sorted(set(_SCHEMA) - set(config))
    unknown = sorted(set(config) - set(_SCHEMA))
    if missing or unknown:
        raise ModelFileError(f"{file}: " + "; ".join(filter(None, [missing and f"missing fields {missing}",
                                                                   unknown and f"unknown fields {unknown}"])) + ".")
    for key, kind in _SCHEMA.items():
        if not isinstance(config[key], kind):
            raise ModelFileError(f"{file}: field {key!r} has the wrong type ({type(config[key]).__name__}).")
    if config["estimator"] not in classes():
        raise ModelFileError(f"{file}: unknown estimator {config['estimator']!r}; a saved model is one of "
                             f"{sorted(classes())}.")
    expected = {TOKENIZER, WEIGHTS} | ({ENCODER_CONFIG} if config["pretrained_encoder"] is not None else set())
    if set(config["files"]) != expected or not all(isinstance(d, str) for d in config["files"].values()):
        raise ModelFileError(f"{file}: 'files' must give the SHA-256 of exactly {sorted(expected)}, got "
                             f"{sorted(config['files'])}.")
    missing = [key for key in (*_NETWORK_KEYS, "task", "reconstruction_weight", "class_weight")
               if key not in config["network"]]
    missing += [key for key in _FITTED + _FITTED_BY_CLASS[config["estimator"]] if key not in config["fitted"]]
    missing += [key for key in ("encoder_prefix", "encoder_suffix", "decoder_tokens") if key not in config["vocabulary"]]
    if config["pretrained_encoder"] is not None:
        missing += [key for key in ("pooling", "normalize", "pad_token_id", "output_dim", "dtype", "attn_implementation")
                    if key not in config["pretrained_encoder"]]
    if missing:
        raise ModelFileError(f"{file}: missing fields {missing}.")


def _read_checked(folder, relative, digest):
    file = folder / relative
    if not file.is_file():
        raise ModelFileError(f"{file}: missing; {CONFIG} lists it among the model's files.")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelFileError(f"{file}: damaged or replaced since save() wrote it (its SHA-256 does not match the "
                             f"one in {CONFIG}).")
    return data


def _estimator_from_config(cls, config, tokenizer, folder):
    from .vocabulary import Vocabulary

    file = folder / CONFIG
    try:
        params = {name: _from_json(value) for name, value in config["params"].items()}
        estimator = cls()
        unknown = sorted(set(params) - set(estimator.get_params(deep=False)))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}")
        estimator.set_params(**params)
        estimator._validate_params()
        vocabulary = config["vocabulary"]
        prefix, suffix = (_int_tuple(vocabulary[key], key) for key in ("encoder_prefix", "encoder_suffix"))
        decoder_tokens = vocabulary["decoder_tokens"]
        if decoder_tokens is not None:
            decoder_tokens = np.asarray(_int_tuple(decoder_tokens, "decoder_tokens"), dtype=np.int64)
            if decoder_tokens.size and (decoder_tokens.min() < 0 or decoder_tokens.max() >= tokenizer.get_vocab_size()):
                raise ValueError("decoder_tokens holds ids outside the tokenizer's vocabulary")
        if any(i < 0 or i >= tokenizer.get_vocab_size() for i in prefix + suffix):
            raise ValueError("encoder_prefix/encoder_suffix hold ids outside the tokenizer's vocabulary")
        estimator.vocabulary_ = Vocabulary(tokenizer, encoder_prefix=prefix, encoder_suffix=suffix,
                                           decoder_tokens=decoder_tokens)
        estimator.tokenizer_ = estimator.vocabulary_.tokenizer
        fitted = config["fitted"]
        for name in ("n_truncated_", "max_length_", "bag_size_", *(["n_labelled_"] if "n_labelled_" in fitted else [])):
            if not isinstance(fitted[name], int) or isinstance(fitted[name], bool) or fitted[name] < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {fitted[name]!r}")
            setattr(estimator, name, fitted[name])
        if "classes_" in fitted:
            estimator.classes_ = _classes_from_file(fitted["classes_"])
        for name in ("target_mean_", "target_scale_"):
            if name in fitted:
                setattr(estimator, name, _target_from_file(fitted[name], name))
        if config["output_config"] is not None:
            estimator._sklearn_output_config = _from_json(config["output_config"])
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(f"{file}: {error}.") from None
    return estimator


def _build_net(estimator, config, encoder_config, folder):
    """The skorch net that ``_build_net`` of the estimator makes, with the saved network's shape,
    initialised (its random weights then replaced) on ``estimator.device_``."""
    from .estimator import _make_module

    file = folder / CONFIG
    try:
        network = {key: _from_json(value) for key, value in config["network"].items()}
        spec = config["pretrained_encoder"]
        if (spec is not None) != _is_pretrained_name(network["encoder"]):
            raise ValueError(f"network encoder {network['encoder']!r} and pretrained_encoder disagree")
        if network["decoder_vocab_size"] != estimator.vocabulary_.decoder_size or \
                network["vocab_size"] != estimator.vocabulary_.encoder_size:
            raise ValueError("the network's vocabulary sizes disagree with the tokenizer and vocabulary")
        # The parameters that shape the network, as _build_net reads them from `shapes`.
        shapes = types.SimpleNamespace(architecture=estimator.architecture, encoder=network["encoder"],
                                       decoder=network["decoder"], latent_dim=network["latent_dim"],
                                       embedding_dim=network["embedding_dim"], hidden_dim=network["hidden_dim"],
                                       num_layers=network["num_layers"], num_heads=network["num_heads"],
                                       variational=network["variational"])
        net = estimator._build_net(shapes=shapes, n_outputs=network["n_outputs"], task=network["task"],
                                   class_weight=network["class_weight"],
                                   reconstruction_weight=network["reconstruction_weight"])
        keywords = {**{key: network[key] for key in _NETWORK_KEYS},
                    "decoder_tokens": estimator.vocabulary_.decoder_tokens}
        if spec is None:
            net.set_params(module=functools.partial(_make_module, **keywords))
        else:
            encoder_config = json.loads(encoder_config.decode("utf-8"))
            net.set_params(module=functools.partial(_make_saved_pretrained_module, encoder_config=encoder_config,
                                                    encoder_spec=spec, **keywords))
        cuda = [torch.device(estimator.device_).index or 0] if torch.device(estimator.device_).type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # the random initial weights are replaced: leave the caller's state
            net.initialize()
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, ImportError) as error:
        raise ModelFileError(f"{file}: the network it describes cannot be built ({error}).") from None
    return net


def _make_saved_pretrained_module(*, encoder_config, encoder_spec, encoder, decoder, decoder_tokens, freeze_encoder,
                                  n_outputs=None, dropout, **sizes):
    """``estimator._make_module`` for a pretrained encoder rebuilt from its saved config.json (random
    weights, which model.safetensors then replaces), not from its folder. ``encoder``, the name the model
    was fitted with, is kept only so that a later save() records it again."""
    import transformers
    from transformers import CONFIG_MAPPING, AutoModel

    from .nn import PretrainedEncoder, build_autoencoder
    from .nn.supervised import SupervisedAutoencoder

    config = dict(encoder_config)
    model_type = config.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"{ENCODER_CONFIG}: unknown model_type {model_type!r}")
    hf_config = CONFIG_MAPPING[model_type].from_dict(config)
    options = {"trust_remote_code": False}
    if encoder_spec["attn_implementation"] is not None:
        options["attn_implementation"] = encoder_spec["attn_implementation"]
    dtype = getattr(torch, encoder_spec["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {encoder_spec['dtype']!r}")
    options["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = dtype
    model = AutoModel.from_config(hf_config, **options).eval()
    module = PretrainedEncoder(model=model, output_dim=encoder_spec["output_dim"], pooling=encoder_spec["pooling"],
                               normalize=encoder_spec["normalize"], pad_token_id=encoder_spec["pad_token_id"])
    module.requires_grad_(not freeze_encoder)
    # The decoder's token embeddings, tied to its logits layer, start as the encoder's do in _make_module
    # (the saved weights then replace them).
    embeddings = module.input_embeddings.weight.detach()[torch.from_numpy(decoder_tokens)]
    autoencoder = build_autoencoder(encoder=module, decoder=decoder, dropout=dropout, decoder_embeddings=embeddings,
                                    **sizes)
    return autoencoder if n_outputs is None else SupervisedAutoencoder(autoencoder=autoencoder, n_outputs=n_outputs,
                                                                       dropout=dropout)


def _load_weights(net, file):
    """Load model.safetensors into the initialised net, strictly: the same names (a shared tensor under
    any one of its names), shapes and dtypes as the network the config describes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{file}: not a readable safetensors file ({error}).") from None
    module = _uncompiled(net.module_)
    expected = module.state_dict()
    groups = {}  # one group of names per tensor
    for name, tensor in expected.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        groups.setdefault(key if tensor.numel() else ("empty", name), []).append(name)
    unknown = sorted(set(saved) - set(expected))
    if unknown:
        raise ModelFileError(f"{file}: tensors {unknown[:5]} are not in the network that {CONFIG} describes.")
    state = {}
    for names in groups.values():
        present = [name for name in names if name in saved]
        if not present:
            raise ModelFileError(f"{file}: tensor {names[0]!r} is missing.")
        for name in present:
            tensor, want = saved[name], expected[name]
            if tuple(tensor.shape) != tuple(want.shape) or tensor.dtype != want.dtype:
                raise ModelFileError(f"{file}: tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}, but the network "
                                     f"that {CONFIG} describes has {want.dtype} {tuple(want.shape)}.")
        for name in names:
            state[name] = saved[present[0]]
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{file}: the weights do not fit the network ({error}).") from None


# ------------------------------------------------------------------------------------------- pickling

def check_pickle_state(estimator, state):
    """For ``__setstate__``: warn when a pickle comes from another sktextae version, and refuse one that
    lacks fields this version needs (rather than failing later with an AttributeError)."""
    version = state.pop("_sktextae_version", None)
    name = next((cls.__name__ for cls in type(estimator).__mro__ if cls.__name__ in _FITTED_BY_CLASS), None)
    needed = list(type(estimator)._get_param_names())
    if "net_" in state and name is not None:
        needed += ["net_", "vocabulary_", "tokenizer_", *_FITTED, *_FITTED_BY_CLASS[name]]
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

def _uncompiled(module):
    return getattr(module, "_orig_mod", module)  # torch.compile's wrapper keeps the network here


def _autoencoder(module):
    from .estimator import _autoencoder as autoencoder

    return autoencoder(module)


def _is_pretrained_module(encoder):
    from .nn import PretrainedEncoder

    return isinstance(encoder, PretrainedEncoder)


def _is_pretrained_name(encoder):
    from .pretrained import is_pretrained

    return is_pretrained(encoder)


def _config_checksum(config):
    contents = {key: value for key, value in config.items() if key != "config_sha256"}
    return hashlib.sha256(json.dumps(contents, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _jsonable(value, what):
    """A value as JSON: None, bool, int, float, str and lists as they are; tuples and dicts tagged, so
    that they come back as they were (a dict's keys keep their types)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, (bool, str)):
            return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list):
        return [_jsonable(item, what) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(item, what) for item in value]}
    if isinstance(value, dict):
        return {"__dict__": [[_jsonable(key, what), _jsonable(item, what)] for key, item in value.items()]}
    raise ValueError(f"save() cannot store {what}: a {type(value).__name__} is not plain data (None, bool, int, "
                     f"float, str, or lists, tuples and dicts of them).")


def _from_json(value):
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_from_json(item) for item in value["__tuple__"])
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], list):
            pairs = value["__dict__"]
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
                raise ValueError("a tagged dict must hold [key, value] pairs")
            return {_hashable(_from_json(key)): _from_json(item) for key, item in pairs}
        raise ValueError(f"an untagged JSON object {sorted(value)[:3]} where a value was expected")
    return value


def _hashable(key):
    if isinstance(key, list):
        raise ValueError("a dict key cannot be a list")
    return key


def _int_tuple(values, what):
    if not isinstance(values, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise ValueError(f"{what} must be a list of integers")
    return tuple(values)


def _classes_from_file(entry):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "values"} or not isinstance(entry["values"], list):
        raise ValueError("classes_ must be {'dtype': ..., 'values': [...]}")
    if entry["dtype"] == "object":
        dtype = np.dtype(object)
    elif isinstance(entry["dtype"], str) and re.fullmatch(r"[<>|=]?[biufU][0-9]+", entry["dtype"]):
        dtype = np.dtype(entry["dtype"])
    else:
        raise ValueError(f"classes_ dtype {entry['dtype']!r} is not one a classifier's labels have")
    if not all(isinstance(label, (str, int, float, bool)) for label in entry["values"]):
        raise ValueError("classes_ values must be str, int, float or bool")
    classes = np.empty(len(entry["values"]), dtype=dtype)
    classes[:] = entry["values"]
    return classes


def _target_from_file(entry, name):
    if not isinstance(entry, dict) or set(entry) != {"shape", "values"}:
        raise ValueError(f"{name} must be {{'shape': ..., 'values': ...}}")
    values = np.asarray(entry["values"], dtype=np.float64)
    if list(values.shape) != entry["shape"] or values.ndim > 1:
        raise ValueError(f"{name} has shape {list(values.shape)}, not the {entry['shape']} recorded")
    return values[()] if values.ndim == 0 else values
