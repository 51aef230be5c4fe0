"""What a local Hugging Face model folder holds, checked as untrusted input before transformers sees it:
``config.json`` read bounded and checked (``read_json``, ``check_model_config``), the model it describes
built on the meta device and compared with the weights file's tensors (``checked_model``), no file that
would make transformers load something else, and ``modules.json``'s pooling. ``sktextae.pretrained``
finds and loads the folder (its docstring tells the whole story) and imports this module, never the
reverse. ``transformers`` stays optional: it is imported inside the functions that need it.
"""

import copy
import inspect
import json
import math
import pathlib
import re

from .exceptions import ModelFileError
from .files import safetensors_header

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


def checked_model(config, *, file, attn_implementation, dtype, weights, weights_file):
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
    options = {"dtype" if transformers_major() >= 5 else "torch_dtype": getattr(torch, dtype)}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    hf_config = _hf_config(config, file=file)
    with torch.device("meta"):  # shapes only: nothing is allocated
        meta = built(AutoModel.from_config, copy.deepcopy(hf_config), trust_remote_code=False, **options, file=file)
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


def built(build, *args, file, what="the model it describes", **kwargs):
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


def transformers_major():
    import transformers

    return int(transformers.__version__.split(".")[0])


def _describe(error):
    """An exception as one short line (torch's and transformers' messages span lines, with colours)."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    return f"{type(error).__name__}: {text[:300]}"


# ------------------------------------------------------------------------------- weights and modules, checked

def check_nothing_much_missing(model, missing, *, config_file, weights_file):
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


def check_no_redirecting_files(folder):
    for name, why in _REDIRECTING_FILES.items():
        if (folder / name).exists():
            raise ModelFileError(f"{folder / name}: the folder is {why}.")
    shard = next((path.name for path in folder.iterdir() if _DISTRIBUTED_SHARD.match(path.name)), None)
    if shard is not None:
        raise ModelFileError(f"{folder / shard}: a distributed-checkpoint shard, which transformers would load "
                             f"instead of the model's weights file; sktextae reads model.safetensors (or "
                             f"pytorch_model.bin) only. Remove the shards or save the model with save_pretrained().")


def weights_header(file):
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


def load_dtype(config, weights, *, config_file, weights_file):
    """The dtype transformers' dtype="auto" loads: the config's, else the first float tensor's."""
    named = config.get("dtype") or config.get("torch_dtype")
    if named is not None:
        return named
    first = next((dtype for dtype, _ in weights.values() if dtype.startswith(("float", "bfloat"))), "float32")
    if first not in FLOAT_DTYPES:
        raise ModelFileError(f"{weights_file}: its weights are {first}, and {config_file} names no dtype; sktextae "
                             f"loads one of {FLOAT_DTYPES}: save the model in one of them.")
    return first


def read_pooling(folder):
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
