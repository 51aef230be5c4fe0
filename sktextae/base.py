"""What every estimator of this package shares: the parameters and their constraints, the text input
contract, and the methods that use a fitted model (decoding, sampling, scoring, saving, pickling). The
machinery lives below: ``fitting`` trains, ``inference`` runs the network, ``persistence`` and
``export`` write files. ``TextAutoencoder`` (``estimator``) and the supervised estimators (``supervised``)
add ``__init__``, ``fit`` and ``transform``.
"""

import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import export, fitting, network, persistence
from ._sklearn_private import Interval, StrOptions
from ._version import __version__
from .batching import NOISE_TYPES
from .inference import batched, decode_batches, encode_texts, log_likelihoods, static_latents
from .nn import ARCHITECTURES, DECODERS, StaticEncoder
from .tokenization import TOKENIZER_KINDS
from .validation import check_latent, check_texts

# The softmax temperature of the texts n_candidates samples, unless given: at 32 candidates on TREC it
# gave better candidates than 1.0 (BLEU 27.4 against 24.7 from scratch, 21.6 against 18.3 on frozen MiniLM).
CANDIDATE_TEMPERATURE = 0.7


class _BaseTextAutoencoder(BaseEstimator):
    """What every estimator of this package shares: the text input contract, the tokenizer, the skorch
    net and its training, encoding, decoding and scoring. Subclasses define ``__init__`` and ``fit``."""

    # The fitted attributes besides the network, the tokenizer and the vocabulary, which save() writes to
    # config.json and pickles must hold; subclasses add their own.
    _fitted_attributes = ("device_", "n_truncated_", "max_length_", "bag_size_", "decode_length_")

    _parameter_constraints = {
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "encoder": [str, None],
        "decoder": [StrOptions(set(DECODERS)), None],
        "freeze_encoder": ["boolean"],
        "encoder_lr": [Interval(Real, 0, None, closed="neither")],
        "static_encoder": ["boolean"],
        "tokenizer": [StrOptions({*TOKENIZER_KINDS, "auto"})],
        "vocab_size": [Interval(Integral, 6, None, closed="left"), StrOptions({"auto"})],
        "lowercase": ["boolean", StrOptions({"auto"})],
        "max_length": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_dim": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "num_heads": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "noise": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
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
        "data_parallel": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "checkpoint_dir": [str, os.PathLike, None],
    }

    # ------------------------------------------------------------------ fitting

    def _fit_new(self, texts, **options):
        """Train a new tokenizer and network on ``texts``: see ``fitting.fit_new``."""
        return fitting.fit_new(self, texts, **options)

    # ------------------------------------------------------------------ using the fitted model

    def _transform(self, X, *, warn=True):
        """The latent vectors of texts (each public class defines ``transform`` itself: scikit-learn's
        ``set_output`` wraps only methods a class defines). ``warn=False``: no ``TruncationWarning``,
        for texts that ``fit`` has just warned about."""
        check_is_fitted(self)
        sequences, _ = self._encode(check_texts(X), warn=warn)
        module = self.net_.module_
        if isinstance(module.encoder, StaticEncoder):
            vocabulary = self.vocabulary_
            return static_latents(self.net_, sequences, prefix=vocabulary.encoder_prefix,
                                  suffix=vocabulary.encoder_suffix)
        return self._batched(sequences, lambda inputs, _: module.encode(inputs["input_ids"], inputs["lengths"]),
                             targets=False)

    def inverse_transform(self, Z, *, strategy="greedy", beam_size=4, temperature=None, top_k=None,
                          no_repeat_ngram_size=None, repetition_penalty=1.0, length_penalty=0.0,
                          n_candidates=1, random_state=None):
        """Decode latent vectors to texts.

        A sequence decoder writes each text until its end token, and never more than
        ``decode_length_`` tokens (the longest training text), batched on the model's device:
        ``strategy="greedy"`` takes the most probable token at each step, ``"beam"`` keeps the
        ``beam_size`` most probable partial texts (never less probable than greedy under the same
        options), and ``"sample"`` draws each token from the softmax at ``temperature``, among the
        ``top_k`` most probable tokens if given. By default no 3-gram is written twice in a text, so
        that decoding cannot loop ("the first the first the first ..."); ``no_repeat_ngram_size=0``
        lifts the guard.

        A bag-of-words decoder (``architecture="bow"``, ``decoder="bag"``) knows no word order: it
        returns an unordered bag, the ``bag_size_`` most probable tokens of each latent vector, most
        probable first, joined with spaces. That is not a text: for compression or generation, fit
        a sequence decoder. Only ``strategy="greedy"`` applies to a bag, and the repetition options
        do not.

        With ``n_candidates`` above 1, the encoder checks the decoder's work: each vector is decoded to
        ``n_candidates`` texts (the chosen strategy's, and ``n_candidates - 1`` drawn by sampling at
        ``temperature``, 0.7 unless given, among the ``top_k`` most probable tokens if given), every
        text is encoded
        again, and the one whose vector lies nearest the given one (Euclidean distance; the strategy's
        own text on a tie) is returned. This costs ``n_candidates`` decodings and encodings per
        vector; held-out texts come back closer to the originals (see the guide for figures).

        Parameters
        ----------
        Z : array-like of shape (n_texts, latent_dim)
        strategy : {"greedy", "beam", "sample"}, default="greedy"
        beam_size : int, default=4
            Beams kept (``strategy="beam"``).
        temperature : float or None, default=None
            Softmax temperature of ``strategy="sample"`` (None: 1.0) and of the candidates that
            ``n_candidates`` samples (None: 0.7, which gave better candidates than 1.0 in the
            benchmarks); lower is closer to greedy.
        top_k : int or None, default=None
            Sample among the ``top_k`` most probable tokens only (``strategy="sample"``).
        no_repeat_ngram_size : int or None, default=None
            No n-gram of this many tokens appears twice in a text (as in Hugging Face's ``generate``);
            0 turns the guard off. None: 3 for a sequence decoder, and nothing for a bag.
        repetition_penalty : float, default=1.0
            Above 1, tokens already in the text are made less likely at every step (CTRL's penalty:
            a positive logit is divided by it, a negative one multiplied); 1.0 is off.
        length_penalty : float, default=0.0
            ``strategy="beam"`` only: a finished text ranks by its log-probability divided by its
            length (tokens and end) to this power; above 0 favours longer texts. 0 ranks by
            probability alone.
        n_candidates : int, default=1
            Texts decoded per vector, of which the one that encodes nearest the vector is returned (a
            sequence decoder only); 1 returns the strategy's text as it is.
        random_state : int, RandomState instance or None, default=None
            Seeds ``strategy="sample"`` and the candidates' sampling.

        Returns
        -------
        texts : ndarray of shape (n_texts,), dtype object (str)
        """
        check_is_fitted(self)
        Z = check_latent(Z, latent_dim=self._n_features_out)
        options = {"strategy": strategy, "beam_size": beam_size, "temperature": temperature, "top_k": top_k,
                   "no_repeat_ngram_size": no_repeat_ngram_size, "repetition_penalty": repetition_penalty,
                   "length_penalty": length_penalty, "n_candidates": n_candidates}
        return self._decode(Z, options, random_state=random_state)

    def sample(self, n_samples=1, *, random_state=None, **decoding):
        """Decode texts from latent vectors drawn from the prior N(0, I) (``variational=True`` only).

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the draws from the prior (and ``strategy="sample"``).
        **decoding
            ``strategy``, ``beam_size``, ``temperature``, ``top_k``, ``no_repeat_ngram_size``,
            ``repetition_penalty``, ``length_penalty``, ``n_candidates``: as in ``inverse_transform``.

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
            ``strategy``, ``beam_size``, ``temperature``, ``top_k``, ``no_repeat_ngram_size``,
            ``repetition_penalty``, ``length_penalty``, ``n_candidates``, ``random_state``: as in
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
        """Decode a checked float32 latent matrix with the decoding ``options`` (``n_candidates`` among them:
        see ``inverse_transform``)."""
        options = dict(options)
        n_candidates = options.pop("n_candidates", 1)
        if options.get("temperature", 0) is None:
            options.pop("temperature")  # None: decode_latent's 1.0 for strategy="sample"
        if not isinstance(n_candidates, Integral) or isinstance(n_candidates, bool) or n_candidates < 1:
            raise ValueError(f"n_candidates must be an int >= 1, got {n_candidates!r}.")
        if n_candidates == 1:
            return self._decode_texts(Z, options, random_state=random_state)
        if not self.net_.module_.is_sequence_decoder:
            raise ValueError(f"n_candidates={n_candidates} samples texts to choose from, but this model's decoder is "
                             f"a bag of words, which has no order to sample: leave n_candidates=1, or fit a sequence "
                             f"decoder (decoder='gru' or 'transformer').")
        return self._decode_candidates(Z, options, n_candidates, random_state=random_state)

    def _decode_candidates(self, Z, options, n_candidates, *, random_state):
        """The strategy's text and ``n_candidates - 1`` sampled ones per vector, and of them the one that
        encodes nearest the vector (see ``inverse_transform``)."""
        rng = check_random_state(random_state)
        # The strategy's own text reads the sampling options only when it samples; the candidates drawn
        # beside it read them, and not the beam's.
        sampling = {name: options.pop(name) for name in ("temperature", "top_k") if name in options}
        if options.get("strategy") == "sample":
            options.update(sampling)
        if sampling.get("temperature") is None:
            sampling["temperature"] = CANDIDATE_TEMPERATURE
        own = self._decode_texts(Z, options, random_state=rng)
        drawn_options = {name: value for name, value in options.items() if name not in ("beam_size", "length_penalty")}
        drawn = self._decode_texts(np.repeat(Z, n_candidates - 1, axis=0), {**drawn_options, **sampling,
                                                                             "strategy": "sample"}, random_state=rng)
        candidates = np.concatenate([own[:, None], drawn.reshape(len(Z), n_candidates - 1)], axis=1)  # (n, K)
        encoded = self._transform(candidates.ravel().tolist(), warn=False).reshape(len(Z), n_candidates, -1)
        distances = ((encoded - Z[:, None, :]) ** 2).sum(-1)  # (n, K)
        return candidates[np.arange(len(Z)), distances.argmin(1)]  # argmin: the first, the own text, on a tie

    def _decode_texts(self, Z, options, *, random_state):
        """Decode a checked float32 latent matrix to texts with the decoding ``options`` of ``decode_latent``."""
        sequences = decode_batches(self.net_, Z, options, max_length=self.decode_length_, n_tokens=self.bag_size_,
                                   batch_size=self.inference_batch_size, random_state=random_state)
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

        A model fitted with ``data_parallel=True``, saved inside its ``torch.distributed`` job, is
        written by rank 0 only: every process calls ``save`` and returns once the folder is written.

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
        return persistence.save(self, path, overwrite=overwrite)

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
        return persistence.load(path, device=device, expected=None if cls is _BaseTextAutoencoder else cls)

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
        return export.export_onnx(self, path, opset=opset)

    def __getstate__(self):
        return dict(super().__getstate__(), _sktextae_version=__version__)

    def __setstate__(self, state):
        state = dict(state)
        persistence.check_pickle_state(self, state)  # warns on another version, refuses a state missing needed fields
        super().__setstate__(state)
        if "net_" in state:
            # skorch maps a CUDA network to the CPU where torch sees no GPU (with a DeviceWarning): training
            # goes on where the network is.
            self.device_ = str(self.net_.device)

    # ------------------------------------------------------------------ helpers

    def _encode(self, texts, *, warn=True):
        """The texts' token sequences, cut to ``max_length_`` (with a ``TruncationWarning``), and how many
        were cut."""
        return encode_texts(self.tokenizer_, texts, max_length=self.max_length_, warn=warn)

    def _batched(self, sequences, compute, *, targets=True):
        """``inference.batched`` on this model's net, ``inference_batch_size`` texts at a time."""
        return batched(self.net_, sequences, compute, batch_size=self.inference_batch_size, targets=targets)

    def _log_likelihoods(self, texts):
        """Per text: the summed token log-likelihood and the number of tokens scored."""
        sequences, _ = self._encode(texts)
        return log_likelihoods(self.net_, sequences, batch_size=self.inference_batch_size)

    @property
    def _n_features_out(self):
        return self.net_.module_.latent_dim

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
