"""A saved folder's ``config.json``: the estimator's parameters, fitted attributes, network and
vocabulary, written as JSON and read back with every field checked (types, ranges, allowed keys and
agreement between fields) before anything is built from it. See ``persistence`` for the folder.
"""

import contextlib
import json
import numbers
import os
import pathlib
import re
import warnings

import numpy as np
import torch

from . import network
from ._sklearn_private import set_output_config
from ._version import __version__
from .exceptions import ModelFileError
from .file_fields import check_fields, check_int, check_number, short
from .files import json_sha256
from .registry import ESTIMATORS

# 2 added fitted decode_length_; a folder of format 1 loads with decode_length_ = max_length_.
# 3 added the network's static_encoder; a folder of format 1 or 2 loads with static_encoder false.
# 4 added the parameter data_parallel; a folder of format 1 to 3 loads with data_parallel false.
# 5 allows "auto" for tokenizer, vocab_size, lowercase and max_length; earlier folders hold their values.
# 6 added the network's bow_weighting; a folder of format 1 to 5 loads with bow_weighting "mean".
# 7 added the network's bow_counts; a folder of format 1 to 6 loads with bow_counts "tokens".
# 8 allows bow_counts "bigrams" and the bigram tables in the weights; earlier folders count words or tokens.
# 9 added the network's static_bigrams; a folder of format 1 to 8 loads with static_bigrams 0.
FORMAT_VERSION = 9
CONFIG, TOKENIZER, WEIGHTS, ENCODER_CONFIG = "config.json", "tokenizer.json", "model.safetensors", "encoder/config.json"


_HEAD_KEYS = ("task", "reconstruction_weight", "class_weight")


_TASKS = {"TextAutoencoder": None, "TextAutoencoderClassifier": "classification",
          "TextAutoencoderRegressor": "regression"}


_CLASS_DTYPE_KINDS = "biufUO"  # the numpy dtype kinds classes_ may have in a file


_OUTPUT_CONTAINERS = ("default", "pandas", "polars")


MAX_CONFIG_BYTES = 64 * 1024 * 1024  # config.json holds the decoder's vocabulary: ~10 bytes a token
# The network's training head, stored beside its shape in config.json's "network".


def params_for_file(estimator):
    """``get_params(deep=False)`` as JSON, and a note of what could not be stored.

    ``callbacks`` and a ``RandomState`` instance as ``random_state`` only matter to a later ``fit``, and
    are arbitrary Python objects: they are stored as None, recorded in the notes, with a warning.
    ``pretrained=`` (supervised estimators) is only read by ``fit``; the network it started is saved.
    A pretrained ``encoder=`` given as a folder path is stored as the folder's name: the author's
    file system is nobody else's business, and the folder needs nothing outside itself.
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
    if isinstance(params.get("encoder"), str):
        params["encoder"] = model_name(params["encoder"])
    if "pretrained" in params:
        notes["pretrained_given"] = params["pretrained"] is not None
        params["pretrained"] = None
    if notes["dropped_params"]:
        warnings.warn(f"save() stores {', '.join(notes['dropped_params'])} as None: they only matter to a later "
                      f"fit, and are not plain data. Set them again after loading to refit the same way.",
                      UserWarning, stacklevel=3)
    return {name: jsonable(value, f"parameter {name}") for name, value in params.items()}, notes


def model_name(encoder):
    """A pretrained model's name as a folder records it: a package's name as it is, a path's last part."""
    if network.pretrained_models.is_pretrained(encoder) and re.search(r"[/\\]", encoder):
        return pathlib.PurePath(encoder.rstrip("/\\")).name or encoder
    return encoder


def network_for_file(estimator):
    spec = network.spec_of(estimator.net_)
    fields = spec.as_dict()
    fields["encoder"] = model_name(fields["encoder"])
    fields.update(task=estimator.net_.task, reconstruction_weight=estimator.net_.reconstruction_weight,
                  class_weight=estimator.net_.class_weight)
    return {key: jsonable(value, f"the network's {key}") for key, value in fields.items()}


def fitted_for_file(estimator):
    fitted = {}
    for name in type(estimator)._fitted_attributes:
        value = getattr(estimator, name)
        if name == "classes_":
            if value.dtype.kind not in _CLASS_DTYPE_KINDS:
                raise ValueError(f"classes_ of dtype {value.dtype} cannot be saved: use int, str or float labels.")
            value = {"dtype": value.dtype.str if value.dtype.kind != "O" else "object",
                     "values": [jsonable(label, "a class label") for label in value.tolist()]}
        elif name.startswith("target_"):
            value = {"shape": list(np.shape(value)), "values": np.asarray(value, dtype=np.float64).tolist()}
        else:
            value = jsonable(value, name)
        fitted[name] = value
    return fitted


def vocabulary_for_file(vocabulary):
    return {"encoder_prefix": [int(i) for i in vocabulary.encoder_prefix],
            "encoder_suffix": [int(i) for i in vocabulary.encoder_suffix],
            "decoder_tokens": None if vocabulary.decoder_tokens is None else
            [int(i) for i in vocabulary.decoder_tokens]}


def versions():
    import sklearn
    import tokenizers

    versions = {"sktextae": __version__, "torch": torch.__version__, "tokenizers": tokenizers.__version__,
                "scikit-learn": sklearn.__version__, "transformers": None}
    with contextlib.suppress(ImportError):
        import transformers

        versions["transformers"] = transformers.__version__
    return versions


def read_json(file):
    """A JSON file of bounded size, any problem (size, encoding, syntax, nesting) a ModelFileError."""
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{file}: {size} bytes, more than the {MAX_CONFIG_BYTES} that a saved model's "
                                 f"config holds.")
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{file}: missing; a folder that save() wrote holds {file.name}.") from None
    except (UnicodeDecodeError, ValueError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(f"{file}: not JSON ({first_line(error)}).") from None
    except RecursionError:
        raise ModelFileError(f"{file}: JSON nested too deeply to be a saved model's config.") from None
    except OSError as error:
        raise ModelFileError(f"{file}: unreadable ({error.strerror or error}).") from None


def read_config(file):
    config = read_json(file)
    if not isinstance(config, dict):
        raise ModelFileError(f"{file}: a JSON object expected, got {type(config).__name__}.")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{file}: format_version must be an integer >= 1, got {short(version)}.")
    if version > FORMAT_VERSION:
        versions = config.get("versions")
        written_by = versions.get("sktextae") if isinstance(versions, dict) else None
        raise ModelFileError(f"{file}: format version {version} (written by sktextae {short(written_by)}) "
                             f"is newer than this sktextae reads ({FORMAT_VERSION}): upgrade sktextae to load it.")
    if config.get("config_sha256") != config_checksum(config):
        raise ModelFileError(f"{file}: edited or damaged since save() wrote it (its config_sha256 does not match "
                             f"its contents).")
    try:
        _check_schema(config)
    except ValueError as error:
        raise ModelFileError(f"{file}: {error}.") from None
    return config


_SCHEMA = {"format_version": int, "estimator": str, "params": dict, "notes": dict, "network": dict,
           "pretrained_encoder": (dict, type(None)), "fitted": dict, "vocabulary": dict,
           "output_config": (dict, type(None)), "versions": dict, "files": dict, "config_sha256": str}


def _check_schema(config):
    """The top level of config.json: the fields, their types, the class and the files it lists."""
    check_fields(config, list(_SCHEMA), "config")
    for key, kind in _SCHEMA.items():
        if not isinstance(config[key], kind):
            raise ValueError(f"field {key!r} has the wrong type ({type(config[key]).__name__})")
    if config["estimator"] not in ESTIMATORS:
        raise ValueError(f"unknown estimator {short(config['estimator'])}; a saved model is one of "
                         f"{sorted(ESTIMATORS)}")
    expected = {TOKENIZER, WEIGHTS} | ({ENCODER_CONFIG} if config["pretrained_encoder"] is not None else set())
    files = config["files"]
    if set(files) != expected or not all(isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d)
                                         for d in files.values()):
        raise ValueError(f"'files' must give the SHA-256 of exactly {sorted(expected)}, got {sorted(files)[:5]}")
    notes = config["notes"]
    check_fields(notes, ["dropped_params", "pretrained_given"], "notes")
    if not isinstance(notes["pretrained_given"], bool) or not isinstance(notes["dropped_params"], dict) \
            or not all(isinstance(v, str) for v in notes["dropped_params"].values()):
        raise ValueError("notes: pretrained_given must be true or false and dropped_params an object of texts")
    if not all(isinstance(key, str) and (value is None or isinstance(value, str))
               for key, value in config["versions"].items()):
        raise ValueError("versions must map package names to version strings")


def estimator_from_config(cls, config, tokenizer, file):
    """The estimator with its parameters and fitted attributes (not the network), every value checked."""
    from .vocabulary import Vocabulary

    try:
        estimator = cls()
        params = config["params"]
        if config["format_version"] < 3 and isinstance(params, dict):  # before static_encoder existed
            params = {**params, "static_encoder": params.get("static_encoder", False)}
        if config["format_version"] < 4 and isinstance(params, dict):  # before data_parallel existed
            params = {**params, "data_parallel": params.get("data_parallel", False)}
        estimator.set_params(**_params_from_file(params, estimator, config["notes"]))
        estimator._validate_params()
        vocabulary = config["vocabulary"]
        check_fields(vocabulary, ["encoder_prefix", "encoder_suffix", "decoder_tokens"], "vocabulary")
        size = tokenizer.get_vocab_size()
        prefix, suffix = (_ids(vocabulary[key], f"vocabulary {key}", size, most=8)
                          for key in ("encoder_prefix", "encoder_suffix"))
        decoder_tokens = vocabulary["decoder_tokens"]
        if decoder_tokens is not None:
            decoder_tokens = np.asarray(_ids(decoder_tokens, "vocabulary decoder_tokens", size, most=size),
                                        dtype=np.int64)
            if len(np.unique(decoder_tokens)) != len(decoder_tokens):
                raise ValueError("vocabulary decoder_tokens holds an id twice")
        estimator.vocabulary_ = Vocabulary(tokenizer, encoder_prefix=prefix, encoder_suffix=suffix,
                                           decoder_tokens=decoder_tokens)
        estimator.tokenizer_ = estimator.vocabulary_.tokenizer
        _fitted_from_file(estimator, config["fitted"], version=config["format_version"])
        output_config = _output_config_from_file(config["output_config"])
        if output_config is not None:
            set_output_config(estimator, output_config)
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        raise ModelFileError(f"{file}: {first_line(error)}.") from None
    return estimator


def _params_from_file(params, estimator, notes):
    """The saved parameters: the estimator's own names, plain data only. What save() always stores as None
    (callbacks, pretrained) must be None: a file never names an object to build."""
    known = estimator.get_params(deep=False)
    check_fields(params, list(known), "params")
    params = {name: _from_json(value) for name, value in params.items()}
    for name in ("callbacks", "pretrained"):
        if params.get(name) is not None:
            raise ValueError(f"params {name} must be null (save() never stores one), got {short(params[name])}")
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        raise ValueError(f"params random_state must be an integer or null, got {short(params['random_state'])}")
    for name in ("device", "checkpoint_dir", "encoder"):
        if params[name] is not None and not isinstance(params[name], str):
            raise ValueError(f"params {name} must be a string, got {short(params[name])}")
    return params


def _fitted_from_file(estimator, fitted, *, version):
    names = type(estimator)._fitted_attributes
    if version == 1:  # written before decode_length_ existed: decoding ran up to max_length_
        names = tuple(name for name in names if name != "decode_length_")
    check_fields(fitted, list(names), "fitted")
    if not isinstance(fitted["device_"], str):
        raise ValueError(f"fitted device_ must be a string, got {short(fitted['device_'])}")
    estimator.n_truncated_ = check_int(fitted["n_truncated_"], "fitted n_truncated_", 0, 2**62)
    estimator.max_length_ = check_int(fitted["max_length_"], "fitted max_length_", 1, network.MAX_LENGTH)
    estimator.bag_size_ = check_int(fitted["bag_size_"], "fitted bag_size_", 1, network.MAX_LENGTH)
    estimator.decode_length_ = estimator.max_length_
    if "decode_length_" in names:
        estimator.decode_length_ = check_int(fitted["decode_length_"], "fitted decode_length_", 1,
                                                     estimator.max_length_)
    if "n_labelled_" in names:
        estimator.n_labelled_ = check_int(fitted["n_labelled_"], "fitted n_labelled_", 1, 2**62)
    if "classes_" in names:
        estimator.classes_ = _classes_from_file(fitted["classes_"])
    for name in ("target_mean_", "target_scale_"):
        if name in names:
            setattr(estimator, name, _target_from_file(fitted[name], name))


def _output_config_from_file(value):
    if value is None:
        return None
    config = _from_json(value)
    if not isinstance(config, dict) or not set(config) <= {"transform"} or \
            not all(container in _OUTPUT_CONTAINERS for container in config.values()):
        raise ValueError(f"output_config must be set_output's {{'transform': one of {_OUTPUT_CONTAINERS}}}, got "
                         f"{short(config)}")
    return config


def network_from_config(estimator, config, encoder_config, folder):
    """The network's spec, its training head and its saved pretrained encoder, each checked against the
    rest of the config (vocabulary sizes, max_length_, the class's head)."""
    file = folder / CONFIG
    try:
        fields = dict(config["network"])
        head = {key: fields.pop(key, None) for key in _HEAD_KEYS}
        if config["format_version"] < 3 and isinstance(fields, dict):
            fields.setdefault("static_encoder", False)
        if config["format_version"] < 6 and isinstance(fields, dict):  # the bag of words averaged its embeddings
            fields.setdefault("bow_weighting", "mean")
        if config["format_version"] < 7 and isinstance(fields, dict):  # the bag of words counted every token
            fields.setdefault("bow_counts", "tokens")
        if config["format_version"] < 9 and isinstance(fields, dict):  # a static encoder counted no bigram
            fields.setdefault("static_bigrams", 0)
        missing = [key for key in _HEAD_KEYS if key not in config["network"]]
        if missing:
            raise ValueError(f"network: missing fields {missing}")
        spec = network.NetworkSpec.from_dict(fields)
        vocabulary = estimator.vocabulary_
        if (spec.vocab_size, spec.decoder_vocab_size) != (vocabulary.encoder_size, vocabulary.decoder_size):
            raise ValueError(f"network vocab_size/decoder_vocab_size ({spec.vocab_size}, {spec.decoder_vocab_size}) "
                             f"disagree with the tokenizer and vocabulary ({vocabulary.encoder_size}, "
                             f"{vocabulary.decoder_size})")
        if spec.max_length != estimator.max_length_:
            raise ValueError(f"network max_length({spec.max_length}) disagrees with fitted max_length_"
                             f"({estimator.max_length_})")
        if estimator.bag_size_ > estimator.max_length_ + 1:
            raise ValueError(f"fitted bag_size_({estimator.bag_size_}) exceeds max_length_ + 1")
        if (config["pretrained_encoder"] is not None) != (spec.pretrained and not spec.static_encoder):
            raise ValueError(f"network encoder {short(spec.encoder)} and pretrained_encoder disagree")
        if spec.pretrained != (vocabulary.decoder_tokens is not None):
            raise ValueError("vocabulary decoder_tokens must be given exactly when the encoder is pretrained")
        head = _head_from_file(head, spec, estimator)
    except ValueError as error:
        raise ModelFileError(f"{file}: {first_line(error)}.") from None
    saved_encoder = None
    if spec.pretrained and not spec.static_encoder:
        encoder_file = folder / ENCODER_CONFIG
        try:
            encoder_config = json.loads(encoder_config.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise ModelFileError(f"{encoder_file}: not JSON ({first_line(error)}).") from None
        try:
            saved_encoder = network.SavedEncoder.from_dict(config["pretrained_encoder"], encoder_config,
                                                           file=encoder_file)
        except ModelFileError:
            raise
        except ValueError as error:
            raise ModelFileError(f"{file}: {first_line(error)}.") from None
    return spec, head, saved_encoder


def _head_from_file(head, spec, estimator):
    task = _TASKS[type(estimator).__name__]
    if head["task"] != task:
        raise ValueError(f"network task {short(head['task'])} is not a {type(estimator).__name__}'s ({task!r})")
    if (spec.n_outputs is None) != (task is None):
        raise ValueError("network n_outputs must be given exactly for a supervised estimator")
    if task == "classification" and spec.n_outputs != len(estimator.classes_):
        raise ValueError(f"network n_outputs({spec.n_outputs}) disagrees with the {len(estimator.classes_)} classes_")
    if task == "regression" and spec.n_outputs != max(1, np.size(estimator.target_mean_)):
        raise ValueError(f"network n_outputs({spec.n_outputs}) disagrees with target_mean_'s shape")
    weight = check_number(head["reconstruction_weight"], "network reconstruction_weight", 0, 1e6)
    class_weight = _from_json(head["class_weight"])
    if class_weight is not None:
        if task != "classification" or not isinstance(class_weight, list) or len(class_weight) != spec.n_outputs:
            raise ValueError("network class_weight must be null or one weight per class")
        class_weight = [check_number(w, "network class_weight", 0, 1e12) for w in class_weight]
    return {"task": task, "reconstruction_weight": weight, "class_weight": class_weight}


def first_line(error):
    """An exception's message, on one line and of bounded length, for a ModelFileError."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def config_checksum(config):
    return json_sha256({key: value for key, value in config.items() if key != "config_sha256"})


def _ids(values, what, size, *, most):
    if not isinstance(values, list) or len(values) > most or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size for i in values):
        raise ValueError(f"{what} must be a list of at most {most} token ids below {size}")
    return tuple(values)


def jsonable(value, what):
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
        return [jsonable(item, what) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [jsonable(item, what) for item in value]}
    if isinstance(value, dict):
        return {"__dict__": [[jsonable(key, what), jsonable(item, what)] for key, item in value.items()]}
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
