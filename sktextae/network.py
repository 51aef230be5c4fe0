"""The network's shape as data, and the one place that builds networks from it.

``NetworkSpec`` (as nanoGPT's ``GPTConfig``) holds every name and number that decides the module's
parameters. ``fit`` derives it from the estimator's parameters (``spec_for``), ``build_module`` builds
the module from it (for a new network, a saved one and one with a pretrained encoder alike),
``config.json`` stores it as its ``"network"`` field, and ``build_net`` wraps the module in the skorch
net with the training policy that the estimator's parameters choose.
"""

import copy
import dataclasses
import functools
import inspect
import pathlib

import torch
from skorch.callbacks import EarlyStopping, GradientNormClipping, PassthroughScoring

from . import checkpoint as checkpoints
from . import pretrained as pretrained_models
from .callbacks import ActiveUnits, KLAnnealing, SyncFreeProgressBar
from .device import is_cuda
from .file_fields import check_fields, check_int, short
from .nn import (
    ARCHITECTURES,
    DECODERS,
    ENCODERS,
    PretrainedDecoder,
    PretrainedEncoder,
    StaticEncoder,
    build_autoencoder,
)
from .nn.bow import COUNTS, WEIGHTINGS
from .nn.pretrained import POOLING
from .nn.supervised import SupervisedAutoencoder
from .pretrained_checks import FLOAT_DTYPES, LOCAL_ATTENTION
from .training import AutoencoderNet

# What a file may ask for. Far above any model this package trains, and low enough that a crafted
# number is refused before anything is built; the weights file's tensor shapes are checked against the
# network before any memory is allocated, which is what bounds memory.
MAX_WIDTH = 1 << 16  # latent, embedding and hidden sizes
MAX_VOCABULARY = 1 << 21
MAX_LAYERS = 128
MAX_LENGTH = 1 << 16  # tokens read from a text and written by decoding
MAX_OUTPUTS = 1 << 20


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """The shape of an autoencoder network (with a supervised head when ``n_outputs`` is set).

    ``encoder`` is a from-scratch encoder (one of ``nn.ENCODERS``) or the name of a pretrained model
    (a folder or package, see ``pretrained``); ``vocab_size`` is the encoder's vocabulary and
    ``decoder_vocab_size`` the decoder's own (smaller with a pretrained encoder). ``decoder`` is one of
    ``nn.DECODERS``; ``"pretrained"`` (with a pretrained encoder only) starts a Transformer decoder from
    the encoder's checkpoint, whose config then decides its width, layers and dropout (``hidden_dim``,
    ``num_layers``, ``num_heads`` and ``dropout`` do not apply to it). ``static_encoder`` (with a
    pretrained encoder's name) says that a ``StaticEncoder`` of ``embedding_dim`` (the pretrained width)
    has replaced the pretrained model after fit: it reads the pretrained vocabulary, the model is gone;
    ``static_bigrams`` is how many bigrams it counts (0 in models saved before it counted any).
    ``bow_weighting`` is how a bag-of-words encoder weighs a text's tokens (``nn.bow.WEIGHTINGS``):
    ``"tfidf"``, or ``"mean"`` in models saved before the TF-IDF encoder (other encoders ignore it);
    ``bow_counts`` what it counts (``nn.bow.COUNTS``): ``"bigrams"`` (``Vocabulary.bag_terms`` of two letters
    or digits or more, and up to ``vocab_size`` of their bigrams), ``"words"`` (of one or more: a single
    character is a word with the ``"char"`` tokenizer, and in models saved before bigrams) or ``"tokens"``.
    """

    encoder: str
    decoder: str
    vocab_size: int
    decoder_vocab_size: int
    latent_dim: int
    embedding_dim: int
    hidden_dim: int
    num_layers: int
    num_heads: int
    dropout: float
    max_length: int
    variational: bool
    n_outputs: int | None = None
    freeze_encoder: bool = False
    static_encoder: bool = False
    bow_weighting: str = "tfidf"
    bow_counts: str = "bigrams"
    static_bigrams: int = 0

    @property
    def pretrained(self):
        return pretrained_models.is_pretrained(self.encoder)

    @property
    def bow_bigrams(self):  # how many bigrams a bag-of-words encoder counts beside its words
        return self.vocab_size if self.encoder == "bow" and self.bow_counts == "bigrams" else 0

    def as_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """A spec from a dict read from a file, every field checked (type and range) before anything
        is built from it. Raises ``ValueError`` naming the field."""
        check_fields(data, [field.name for field in dataclasses.fields(cls)], "network")
        if not isinstance(data["encoder"], str) or not 0 < len(data["encoder"]) <= 4096:
            raise ValueError(f"network encoder must be a name, got {short(data['encoder'])}")
        if data["decoder"] not in DECODERS:
            raise ValueError(f"network decoder must be one of {DECODERS}, got {short(data['decoder'])}")
        for name, low, high in (("vocab_size", 6, MAX_VOCABULARY), ("decoder_vocab_size", 6, MAX_VOCABULARY),
                                ("latent_dim", 1, MAX_WIDTH), ("embedding_dim", 1, MAX_WIDTH),
                                ("hidden_dim", 1, MAX_WIDTH), ("num_layers", 1, MAX_LAYERS),
                                ("num_heads", 1, MAX_WIDTH), ("max_length", 1, MAX_LENGTH)):
            check_int(data[name], f"network {name}", low, high)
        check_int(data["static_bigrams"], "network static_bigrams", 0, MAX_VOCABULARY)
        if data["static_bigrams"] and not data["static_encoder"]:
            raise ValueError(f"network static_bigrams {data['static_bigrams']} needs static_encoder true")
        if data["n_outputs"] is not None:
            check_int(data["n_outputs"], "network n_outputs", 1, MAX_OUTPUTS)
        for name in ("variational", "freeze_encoder", "static_encoder"):
            if not isinstance(data[name], bool):
                raise ValueError(f"network {name} must be true or false, got {short(data[name])}")
        if data["bow_weighting"] not in WEIGHTINGS:
            raise ValueError(f"network bow_weighting must be one of {WEIGHTINGS}, got {short(data['bow_weighting'])}")
        if data["bow_counts"] not in COUNTS:
            raise ValueError(f"network bow_counts must be one of {COUNTS}, got {short(data['bow_counts'])}")
        if data["bow_counts"] != "tokens" and data["bow_weighting"] != "tfidf":
            raise ValueError(f"network bow_counts {short(data['bow_counts'])} needs bow_weighting 'tfidf' (the mean "
                             f"of the embeddings counts every token), got {short(data['bow_weighting'])}")
        dropout = data["dropout"]
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"network dropout must be a number in [0, 1), got {short(dropout)}")
        spec = cls(**{**data, "dropout": float(dropout)})
        if spec.decoder == "pretrained" and not spec.pretrained:
            raise ValueError(f"network decoder 'pretrained' starts from a pretrained encoder's checkpoint, but "
                             f"encoder {short(spec.encoder)} is trained from scratch")
        if spec.static_encoder and not (spec.pretrained and spec.freeze_encoder and spec.decoder != "pretrained"):
            raise ValueError(f"network static_encoder replaces a frozen pretrained encoder with a decoder of its own, "
                             f"but encoder is {short(spec.encoder)} (freeze_encoder {spec.freeze_encoder}) and decoder "
                             f"{short(spec.decoder)}")
        if "transformer" in (spec.encoder, spec.decoder) and spec.embedding_dim % spec.num_heads:
            raise ValueError(f"network embedding_dim({spec.embedding_dim}) is not divisible by "
                             f"num_heads({spec.num_heads})")
        return spec


@dataclasses.dataclass(frozen=True)
class SavedEncoder:
    """A pretrained encoder as a saved folder describes it: its Hugging Face ``config`` (from which the
    model is rebuilt with random weights that the saved ones replace) and how it pools. ``file`` names
    the config's file, for error messages."""

    config: dict
    pooling: str
    normalize: bool
    pad_token_id: int
    output_dim: int
    dtype: str
    attn_implementation: str | None
    file: str

    @classmethod
    def from_dict(cls, spec, config, *, file):
        """Checked fields of ``config.json``'s ``pretrained_encoder`` and the encoder's own config."""
        names = ["pooling", "normalize", "pad_token_id", "output_dim", "dtype", "attn_implementation"]
        check_fields(spec, names, "pretrained_encoder")
        if spec["pooling"] not in POOLING:
            raise ValueError(f"pretrained_encoder pooling must be one of {POOLING}, got {short(spec['pooling'])}")
        if not isinstance(spec["normalize"], bool):
            raise ValueError(f"pretrained_encoder normalize must be true or false, got {short(spec['normalize'])}")
        check_int(spec["pad_token_id"], "pretrained_encoder pad_token_id", 0, MAX_VOCABULARY)
        check_int(spec["output_dim"], "pretrained_encoder output_dim", 1, MAX_WIDTH)
        if spec["dtype"] not in FLOAT_DTYPES:
            raise ValueError(f"pretrained_encoder dtype must be one of {FLOAT_DTYPES}, got {short(spec['dtype'])}")
        if spec["attn_implementation"] not in (None, *LOCAL_ATTENTION):
            raise ValueError(f"pretrained_encoder attn_implementation must be None or one of {LOCAL_ATTENTION} (those that "
                             f"run locally), got {short(spec['attn_implementation'])}")
        config = pretrained_models.check_model_config(config, file=file)
        return cls(config=config, file=str(file), **spec)



def saved_encoder_fields(encoder):
    """What ``SavedEncoder.from_dict`` reads back to rebuild a fitted ``PretrainedEncoder`` without its
    folder (beside its Hugging Face config, which the folder keeps in a file of its own)."""
    model = encoder.model
    attention = getattr(model.config, "_attn_implementation", None)
    return {"pooling": encoder.pooling, "normalize": bool(encoder.normalize), "pad_token_id": int(encoder.pad_token_id),
            "output_dim": int(encoder.output_dim), "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "attn_implementation": attention if attention in LOCAL_ATTENTION else None}


# ---------------------------------------------------------------------------------------------- modules

def build_module(spec, *, decoder_tokens=None, bow_terms=None, saved_encoder=None):
    """The network that ``spec`` describes, with fresh weights: an ``nn.Autoencoder``, wrapped in an
    ``nn.SupervisedAutoencoder`` when ``spec.n_outputs`` is set.

    A pretrained encoder comes from ``saved_encoder`` (a ``SavedEncoder``: rebuilt from its config,
    with random weights for the caller to replace) or else from the folder ``spec.encoder`` names
    (loaded once per process, copied here). The decoder's token embeddings start from the encoder's
    input embeddings of ``decoder_tokens``, tied to its logits layer. A ``"pretrained"`` decoder is
    built from the same config, its layers copied from the loaded checkpoint (from a folder), or left
    random for the saved weights to replace (from ``saved_encoder``). With ``spec.static_encoder``, a
    frozen ``StaticEncoder`` stands in the pretrained encoder's place, its weights left for the caller.
    A bag of words counts ``bow_terms`` (``bag_terms``; None only where no text will pass through, as in
    a check of the weights' shapes).
    """
    encoder, decoder, decoder_embeddings = spec.encoder, spec.decoder, None
    if spec.static_encoder:  # the pretrained model is gone: every weight comes from the saved file
        encoder = StaticEncoder(vocab_size=spec.vocab_size, embedding_dim=spec.embedding_dim,
                                bigrams=spec.static_bigrams).requires_grad_(False)
        decoder_embeddings = torch.zeros(spec.decoder_vocab_size, spec.embedding_dim)  # (decoder vocabulary, C)
    elif spec.pretrained:
        encoder = _pretrained_encoder(spec, saved_encoder)
        index = torch.as_tensor(decoder_tokens, dtype=torch.long, device=encoder.input_embeddings.weight.device)
        decoder_embeddings = encoder.input_embeddings.weight.detach()[index]  # (decoder vocabulary, C)
        encoder.requires_grad_(not spec.freeze_encoder)
        if spec.decoder == "pretrained":  # a model of its own: it trains whether the encoder is frozen or not
            decoder = _pretrained_decoder(spec, saved_encoder, encoder)
    module = build_autoencoder(
        encoder=encoder, decoder=decoder, vocab_size=spec.vocab_size, decoder_vocab_size=spec.decoder_vocab_size,
        latent_dim=spec.latent_dim, embedding_dim=spec.embedding_dim, hidden_dim=spec.hidden_dim,
        num_layers=spec.num_layers, num_heads=spec.num_heads, dropout=spec.dropout, max_length=spec.max_length,
        variational=spec.variational, decoder_embeddings=decoder_embeddings, bow_weighting=spec.bow_weighting,
        bow_terms=bow_terms, bow_bigrams=spec.bow_bigrams)
    if spec.n_outputs is None:
        return module
    return SupervisedAutoencoder(autoencoder=module, n_outputs=spec.n_outputs, dropout=spec.dropout)


def bag_terms(spec, vocabulary):
    """The ``terms`` of the bag-of-words encoder of ``spec`` (``Vocabulary.bag_terms``) when it counts words
    (and bigrams of them), else None. Computed from the tokenizer each time the network is built: they are no weight of the model."""
    if spec.encoder != "bow" or spec.bow_counts == "tokens":
        return None
    return vocabulary.bag_terms(min_word_chars=2 if spec.bow_counts == "bigrams" else 1)


def _pretrained_encoder(spec, saved):
    if saved is None:
        model = pretrained_models.load(spec.encoder)
        return PretrainedEncoder(model=copy.deepcopy(model.model), output_dim=model.hidden_size, pooling=model.pooling,
                                 normalize=model.normalize, pad_token_id=model.pad_token_id)
    model = pretrained_models.model_from_config(saved.config, file=saved.file, dtype=saved.dtype,
                                                attn_implementation=saved.attn_implementation)
    return PretrainedEncoder(model=model.eval(), output_dim=saved.output_dim, pooling=saved.pooling,
                             normalize=saved.normalize, pad_token_id=saved.pad_token_id)


def _pretrained_decoder(spec, saved, encoder):
    """The decoder that ``decoder="pretrained"`` names, from the encoder's config (``saved.config``, or
    the loaded model's), with the checkpoint's weights copied in when the encoder is new."""
    if saved is None:
        config = pretrained_models.config_of(encoder.model)
        file = pathlib.Path(pretrained_models.load(spec.encoder).folder) / "config.json"
    else:
        config, file = saved.config, saved.file
    model = pretrained_models.decoder_from_config(config, file=file)
    decoder = PretrainedDecoder(model=model, latent_dim=spec.latent_dim, vocab_size=spec.decoder_vocab_size)
    if saved is None:
        pretrained_models.copy_checkpoint(model, encoder.model)
    return decoder


def autoencoder_of(module):
    """The autoencoder inside a module: the module itself, or the one a supervised head wraps; under
    ``compile=True``, inside the wrapper torch.compile puts around the network."""
    module = uncompiled(module)
    return module.autoencoder if isinstance(module, SupervisedAutoencoder) else module


def uncompiled(module):
    return getattr(module, "_orig_mod", module)  # torch._dynamo's OptimizedModule keeps the original here


def encoder_is_frozen(module):
    return not any(parameter.requires_grad for parameter in autoencoder_of(module).encoder.parameters())


# ---------------------------------------------------------------------------------------------- from parameters

def encoder_decoder(params):
    """The encoder and decoder that an estimator's parameters choose: ``encoder=`` and ``decoder=`` where
    given, else the pair that ``architecture`` names."""
    encoder, decoder = ARCHITECTURES[params["architecture"]]
    return params["encoder"] or encoder, params["decoder"] or decoder


# The token embedding width of embedding_dim=None for a from-scratch model, and for a bag of words at
# least latent_dim: its projection, where training starts (LSA), is as wide as its embeddings.
SCRATCH_EMBEDDING_DIM = 128


def embedding_dim(params):
    """The token embedding width: ``embedding_dim``, or when None the pretrained encoder's own width, for a
    bag of words the larger of ``SCRATCH_EMBEDDING_DIM`` and ``latent_dim``, else ``SCRATCH_EMBEDDING_DIM``."""
    if params["embedding_dim"] is not None:
        return params["embedding_dim"]
    encoder, _ = encoder_decoder(params)
    if pretrained_models.is_pretrained(encoder):
        return pretrained_models.load(encoder).hidden_size
    return max(SCRATCH_EMBEDDING_DIM, params["latent_dim"]) if encoder == "bow" else SCRATCH_EMBEDDING_DIM


# What "auto" gives the tokenizer and the cut of each text. A bag-of-words model trained from scratch
# makes features: it reads a text as scikit-learn's TfidfVectorizer does, lowercased words (and
# punctuation), enough of them to name a topic's rare ones, and the whole of a long text, which costs
# it little (bench_default_lsa.py). Every other model reads byte-level BPE, which spells any text back,
# cut at 128 tokens.
BAG_OF_WORDS_TEXT = {"tokenizer": "word", "vocab_size": 32000, "lowercase": True, "max_length": 4096}
SEQUENCE_TEXT = {"tokenizer": "bpe", "vocab_size": 4000, "lowercase": False, "max_length": 128}


def text_settings(params):
    """``tokenizer``, ``vocab_size``, ``lowercase`` and ``max_length`` of the parameters ``params``, each
    ``"auto"`` resolved: ``BAG_OF_WORDS_TEXT`` for a bag-of-words encoder with a bag decoder, else
    ``SEQUENCE_TEXT``."""
    choice = BAG_OF_WORDS_TEXT if encoder_decoder(params) == ("bow", "bag") else SEQUENCE_TEXT
    return {name: choice[name] if params[name] == "auto" else params[name] for name in choice}


def spec_for(shapes, *, vocabulary, max_length, dropout, freeze_encoder, n_outputs=None):
    """The ``NetworkSpec`` that the parameters ``shapes`` (an estimator's ``get_params``, or those of the
    fitted model a supervised estimator starts from) choose for a vocabulary and ``max_length``."""
    encoder, decoder = encoder_decoder(shapes)
    bow_counts = "words" if text_settings(shapes)["tokenizer"] == "char" else "bigrams"
    return NetworkSpec(
        encoder=encoder, decoder=decoder, vocab_size=vocabulary.encoder_size,
        decoder_vocab_size=vocabulary.decoder_size, latent_dim=shapes["latent_dim"],
        embedding_dim=embedding_dim(shapes), hidden_dim=shapes["hidden_dim"], num_layers=shapes["num_layers"],
        num_heads=shapes["num_heads"], dropout=dropout, max_length=max_length, variational=shapes["variational"],
        n_outputs=n_outputs, freeze_encoder=pretrained_models.is_pretrained(encoder) and freeze_encoder,
        bow_counts=bow_counts)


def learning_rate(lr, spec):
    """``lr``, or for ``"auto"`` the rate measured best for the network: 1e-3 with a transformer on either
    side (a pretrained decoder is one) or a pretrained encoder being fine-tuned, 3e-3 otherwise."""
    if lr != "auto":
        return lr
    fine_tuning = spec.pretrained and not spec.freeze_encoder
    transformer = "transformer" in (spec.encoder, spec.decoder) or spec.decoder == "pretrained"
    return 1e-3 if fine_tuning or transformer else 3e-3


# The denoising rate of noise="auto" with a bag decoder (TSDAE's rate: it gave the best bag-of-words
# features); a sequence decoder is chosen to write text back, which a corrupted input only teaches worse.
BAG_NOISE = 0.6


def noise_rate(noise, spec):
    """``noise``, or for ``"auto"``: ``BAG_NOISE`` with a bag decoder, 0 with a sequence decoder."""
    if noise != "auto":
        return noise
    return BAG_NOISE if spec.decoder == "bag" else 0.0


# The parameters that shape the network and the tokenizer: what a supervised estimator's pretrained=
# brings with it.
SHAPING_PARAMS = ("latent_dim", "architecture", "encoder", "decoder", "tokenizer", "vocab_size", "lowercase",
                  "max_length", "embedding_dim", "hidden_dim", "num_layers", "num_heads", "variational",
                  "static_encoder")


def shaping_defaults(cls):
    """The defaults of a class's ``__init__``: what a parameter that cannot apply must be left at."""
    return {name: parameter.default for name, parameter in inspect.signature(cls.__init__).parameters.items()}


# ---------------------------------------------------------------------------------------------- the skorch net

def build_net(spec, params, *, device, vocabulary, decoder_tokens=None, task=None, class_weight=None,
              reconstruction_weight=1.0, saved_encoder=None):
    """The skorch net of a network ``spec``, with the training policy that the estimator's ``params``
    (its ``get_params(deep=False)``) choose: optimizer, learning rates, callbacks, noise, bf16 on CUDA.

    The module is given as a factory: skorch builds it in ``initialize()``, which the caller runs inside
    a seeded torch random state. A pretrained encoder is named by its folder (or ``saved_encoder``)
    rather than held, so that the net does not pickle the model twice.
    """
    module = functools.partial(build_module, spec, decoder_tokens=decoder_tokens, bow_terms=bag_terms(spec, vocabulary),
                               saved_encoder=saved_encoder)
    on_cuda = is_cuda(device)
    options = {"optimizer__fused": True} if on_cuda else {}
    if spec.pretrained and not spec.freeze_encoder:
        # The pretrained weights are fine-tuned at their own, smaller learning rate.
        options["optimizer__param_groups"] = [("*encoder.model.*", {"lr": params["encoder_lr"]})]
    callbacks = [("clip", GradientNormClipping(gradient_clip_value=1.0))]
    if params["patience"] is not None:
        callbacks.append(("early_stopping", EarlyStopping(monitor="valid_loss", patience=params["patience"],
                                                          load_best=True, sink=_silent)))
    if spec.variational:
        callbacks += [("kl_annealing", KLAnnealing(params["kl_annealing_epochs"])), ("active_units", ActiveUnits())]
        # Per-epoch means of what get_loss records per batch.
        callbacks += [(name, PassthroughScoring(name, on_train=name.startswith("train")))
                      for name in ("train_kl", "train_reconstruction", "valid_kl", "valid_reconstruction")
                      if params["validation_fraction"] or name.startswith("train")]
    if params["verbose"]:
        callbacks.append(("progress_bar", SyncFreeProgressBar()))
    callbacks += copy.deepcopy(params["callbacks"] or [])
    if params["checkpoint_dir"] is not None:  # last: the history it saves holds every other callback's records
        callbacks.append((checkpoints.CALLBACK_NAME, checkpoints.EpochCheckpoint(params["checkpoint_dir"])))
    word_dropout = params["word_dropout"]
    if word_dropout == "auto":
        word_dropout = 0.25 if spec.variational else 0.0
    return AutoencoderNet(
        module, criterion=torch.nn.Identity, optimizer=torch.optim.AdamW, lr=learning_rate(params["lr"], spec),
        max_epochs=params["max_epochs"], batch_size=params["batch_size"], device=device, callbacks=callbacks,
        verbose=params["verbose"], train_split=None, use_bf16=on_cuda and torch.cuda.is_bf16_supported(),
        noise=noise_rate(params["noise"], spec), noise_type=params["noise_type"], word_dropout=word_dropout,
        free_bits=params["free_bits"], task=task, class_weight=class_weight,
        reconstruction_weight=reconstruction_weight, compile=params["compile"], vocabulary=vocabulary,
        data_parallel=params["data_parallel"],
        # A pretrained model that trains holds weights the package never uses (BERT's pooler).
        unused_parameters=spec.pretrained and not spec.freeze_encoder, **options)


def spec_of(net):
    """The ``NetworkSpec`` a net of ``build_net`` was built from (its module factory's first argument)."""
    factory = net.module
    if not (isinstance(factory, functools.partial) and factory.func is build_module
            and isinstance(factory.args[0], NetworkSpec)):
        raise ValueError("this model's net_.module is not the network factory that fit() sets (it was replaced): "
                         "it cannot be saved.")
    return factory.args[0]


def _silent(*args, **kwargs):
    """EarlyStopping's message sink; the per-epoch log already shows when training stopped."""


__all__ = ["ENCODERS", "NetworkSpec", "SavedEncoder", "autoencoder_of", "bag_terms", "build_module", "build_net", "spec_for"]
