"""Supervised estimators on the autoencoder: a semi-supervised classifier and a regressor.

Both train a head on the latent vector jointly with the reconstruction loss, so unlabelled texts
(label -1 or None for the classifier, NaN for the regressor) still shape the encoder, and both can
start from a fitted ``TextAutoencoder`` (``pretrained=``): pretrain on a large unlabelled corpus,
then fine-tune on the labels.
"""

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, ClassNamePrefixFeaturesOutMixin, RegressorMixin, TransformerMixin, clone
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from . import fitting, network
from ._sklearn_private import Interval, StrOptions, _fit_context, copy_sklearn_configuration
from .base import _BaseTextAutoencoder
from .estimator import TextAutoencoder
from .registry import register
from .validation import check_labels, check_texts, is_unlabelled, unique_labels

# Free text has no place in a numpydoc Parameters section (it would be read as parameter names): what
# the supervised estimators share with TextAutoencoder is said before it, their own parameters in it.
_SUPERVISED_INTRO = """
    The text input contract, the training machinery and every parameter of ``TextAutoencoder``
    apply (see its docstring; ``checkpoint_dir``'s checkpoints also compare the labels, and
    ``pretrained``'s weights), plus the parameters below.
"""

_SUPERVISED_DOC = """
    reconstruction_weight : float, default=1.0
        Weight of the reconstruction loss beside the supervised loss; 0 trains the encoder on the
        labels alone (unlabelled texts then contribute nothing).
    pretrained : TextAutoencoder or None, default=None
        A fitted ``TextAutoencoder`` to start from: its tokenizer, ``max_length`` and network
        (architecture, sizes and weights) are reused, not refitted, and the parameters of this
        estimator that shape them (``architecture``, ``encoder``, ``decoder``, ``latent_dim``,
        ``tokenizer``, ``vocab_size``, ``lowercase``, ``max_length``, ``embedding_dim``,
        ``hidden_dim``, ``num_layers``, ``num_heads``, ``variational``) come from it: leave them at
        their defaults (or set them to the pretrained model's values); another value raises a
        ``ValueError`` naming both. Training here works on copies: the
        pretrained model is never changed, and ``clone`` keeps the same fitted model rather than an
        unfitted copy.
"""


class _SupervisedMixin(TransformerMixin):
    """What the classifier and the regressor share: the head's outputs, transform, and clone with
    ``pretrained``. A TransformerMixin itself, so that ``set_output`` wraps the ``transform`` here."""

    def _head_outputs(self, X):
        """The head's outputs for texts X: (n_texts, n_outputs) float32."""
        check_is_fitted(self)
        sequences, _ = self._encode(check_texts(X))
        module = self.net_.module_
        return self._batched(sequences, lambda inputs, _: module.predict(inputs["input_ids"], inputs["lengths"]))

    def _check_pretrained(self):
        if self.pretrained is None:
            return
        check_is_fitted(self.pretrained, msg="pretrained must be a fitted TextAutoencoder: call "
                                             "pretrained.fit(texts) before passing it.")
        # A parameter set here that the pretrained model's network overrides would be silently ignored,
        # and get_params would disagree with the model: refuse it, naming both values.
        defaults = network.shaping_defaults(type(self))
        for name in network.SHAPING_PARAMS:
            mine, theirs = getattr(self, name), getattr(self.pretrained, name)
            if mine != defaults[name] and mine != theirs:
                raise ValueError(f"{name}={mine!r} here, but pretrained was fitted with {name}={theirs!r}: its "
                                 f"network and tokenizer are reused as they are. Leave {name} at its default or "
                                 f"set it to {theirs!r}.")

    def transform(self, X):
        """Encode texts to their latent vectors (the encoder is fine-tuned with the head).

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        return self._transform(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """``fit(X, y).transform(X)``, with one ``TruncationWarning`` for the texts, not one in each.

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_texts,)

        Returns
        -------
        Z : ndarray of shape (n_texts, latent_dim), dtype float32
        """
        texts = check_texts(X)
        return self.fit(texts, y)._transform(texts, warn=False)

    def get_params(self, deep=True):
        """Parameters of this estimator; ``pretrained`` is returned as it is, never opened up.

        scikit-learn lists a nested estimator's parameters as ``pretrained__<name>`` with
        ``deep=True``, and ``set_params`` would then change the user's own fitted model in place:
        ``pretrained`` is read-only here, so its parameters are not offered.
        """
        return super().get_params(deep=False)

    def set_params(self, **params):
        nested = sorted(name for name in params if name.startswith("pretrained__"))
        if nested:
            raise ValueError(f"{nested[0]!r}: the pretrained model is read-only here. Set its parameters on the "
                             f"model itself and refit it, or pass another fitted model as pretrained=.")
        return super().set_params(**params)

    def __sklearn_clone__(self):
        # scikit-learn's clone would replace a fitted `pretrained` with an unfitted copy, silently
        # dropping its training; keep the very same object (fit only reads it, never changes it).
        params = self.get_params(deep=False)
        pretrained = params.pop("pretrained")
        cloned = type(self)(**{name: clone(value, safe=False) for name, value in params.items()}, pretrained=pretrained)
        # What scikit-learn's own clone carries over besides the parameters: set_output's and the
        # metadata-routing configuration.
        copy_sklearn_configuration(self, cloned)
        return cloned


_SUPERVISED_CONSTRAINTS = {
    **_BaseTextAutoencoder._parameter_constraints,
    "reconstruction_weight": [Interval(Real, 0, None, closed="left")],
    "pretrained": [TextAutoencoder, None],
}


@register
class TextAutoencoderClassifier(_SupervisedMixin, ClassNamePrefixFeaturesOutMixin, ClassifierMixin,
                                _BaseTextAutoencoder):
    __doc__ = """A semi-supervised text classifier: a classification head on the autoencoder's latent vector.

    The head and the autoencoder train together: cross-entropy on the labelled texts plus
    ``reconstruction_weight`` times the reconstruction loss on every text. Following scikit-learn's
    convention (``SelfTrainingClassifier``, ``LabelSpreading``), a text labelled ``-1`` (or ``None``
    in an object array) is unlabelled and contributes only to reconstruction.
""" + _SUPERVISED_INTRO + """
    Parameters
    ----------""" + _SUPERVISED_DOC + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the cross-entropy, as in scikit-learn's linear models.

    Attributes
    ----------
    classes_ : ndarray
        The class labels seen among the labelled texts, sorted.
    n_labelled_ : int
        How many training texts were labelled.
    tokenizer_, net_, device_, n_truncated_, max_length_, decode_length_, bag_size_
        As in ``TextAutoencoder``.

    Examples
    --------
    >>> from sktextae import TextAutoencoderClassifier
    >>> texts = ["the cat sat on the mat", "stocks fell sharply", "a dog ran", "bonds rallied"] * 5
    >>> labels = ["pets", "markets", "pets", -1] * 5   # -1: unlabelled
    >>> clf = TextAutoencoderClassifier(latent_dim=8, architecture="gru", embedding_dim=16, hidden_dim=16,
    ...                                 num_layers=1, max_epochs=2, validation_fraction=0, patience=None,
    ...                                 random_state=0).fit(texts, labels)
    >>> clf.classes_
    array(['markets', 'pets'], dtype=object)
    >>> clf.predict_proba(["a cat"]).shape
    (1, 2)
    """

    _parameter_constraints = {**_SUPERVISED_CONSTRAINTS,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}
    _fitted_attributes = (*_BaseTextAutoencoder._fitted_attributes, "classes_", "n_labelled_")

    def __init__(self, latent_dim=64, *, architecture="bow", encoder=None, decoder=None,
                 freeze_encoder=True, encoder_lr=3e-5, static_encoder=False, tokenizer="auto", vocab_size="auto",
                 lowercase="auto", max_length="auto", embedding_dim=None, hidden_dim=256, num_layers=1, num_heads=4,
                 dropout=0.1, noise="auto", noise_type="delete", variational=False, kl_annealing_epochs=5,
                 free_bits=0.1, word_dropout="auto", max_epochs=60, batch_size=32, inference_batch_size=256,
                 lr="auto", validation_fraction=0.1, patience=3, device="auto", compile=False, data_parallel=False,
                 random_state=None,
                 verbose=0, callbacks=None, checkpoint_dir=None, reconstruction_weight=1.0, class_weight=None,
                 pretrained=None):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        self.encoder_lr = encoder_lr
        self.static_encoder = static_encoder
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
        self.data_parallel = data_parallel
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.reconstruction_weight = reconstruction_weight
        self.class_weight = class_weight
        self.pretrained = pretrained

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on texts ``X`` with labels ``y`` (-1 or None marks an unlabelled text).

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_texts,)
            Labels of any type (int, str, ...); -1, or None in an object array, for unlabelled texts
            (a missing value in a pandas Series of strings, which is how pandas stores None, too).

        Returns
        -------
        self : TextAutoencoderClassifier

        Raises
        ------
        sktextae.NonFiniteLossError
            A NaN or infinite training loss, as in ``TextAutoencoder.fit``.
        """
        texts = check_texts(X)
        y = check_labels(y, len(texts), estimator=self)
        # In a float array NaN is an error; elsewhere it is how pandas stores a None (str Series, pandas >= 3).
        missing_is_unlabelled = y.dtype.kind != "f"
        labelled = np.array([not is_unlabelled(label, missing_is_unlabelled) for label in y], dtype=bool)
        if not labelled.any():
            raise ValueError("Every text is unlabelled (-1 or None): at least two classes need labelled texts. "
                             "To train on unlabelled texts alone, use TextAutoencoder.")
        classes = unique_labels(y[labelled])
        continuous = [label for label in classes.tolist() if isinstance(label, float) and not label.is_integer()]
        if continuous:  # as scikit-learn's classifiers, whose score() would refuse them later
            raise ValueError(f"y holds non-integer numbers such as {continuous[0]!r}: a classifier needs discrete "
                             f"labels; for a numeric target use TextAutoencoderRegressor.")
        if len(classes) < 2:
            raise ValueError(f"The labelled texts hold a single class ({classes.tolist()[0]!r}); a classifier "
                             f"needs at least 2.")
        self._check_pretrained()
        encoded = np.full(len(y), -1, dtype=np.int64)
        encoded[labelled] = np.searchsorted(classes, y[labelled])
        weights = None
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=classes, y=y[labelled]).tolist()
        fitting.fit_new(self, texts, epochs=self.max_epochs, labels=encoded, n_outputs=len(classes), task="classification",
                      reconstruction_weight=self.reconstruction_weight,
                      class_weight=weights, pretrained=self.pretrained)
        self.classes_, self.n_labelled_ = classes, int(labelled.sum())
        return self

    def predict_proba(self, X):
        """Class probabilities of texts, columns in the order of ``classes_``.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        proba : ndarray of shape (n_texts, n_classes)
        """
        logits = torch.from_numpy(self._head_outputs(X))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def predict(self, X):
        """The most probable class of each text.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        labels : ndarray of shape (n_texts,)
        """
        check_is_fitted(self)  # before reading classes_: NotFittedError, not AttributeError
        return self.classes_[self._head_outputs(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


@register
class TextAutoencoderRegressor(_SupervisedMixin, ClassNamePrefixFeaturesOutMixin, RegressorMixin,
                               _BaseTextAutoencoder):
    __doc__ = """A text regressor: a regression head on the autoencoder's latent vector.

    The head and the autoencoder train together: squared error on the standardised targets of the
    labelled texts plus ``reconstruction_weight`` times the reconstruction loss on every text. A
    target of NaN marks an unlabelled text (for several targets, a row with any NaN).
""" + _SUPERVISED_INTRO + """
    Parameters
    ----------""" + _SUPERVISED_DOC + """
    Attributes
    ----------
    n_labelled_ : int
        How many training texts had a target.
    target_mean_, target_scale_ : float or ndarray of shape (n_targets,)
        The labelled targets' mean and standard deviation; the head predicts standardised targets.
    tokenizer_, net_, device_, n_truncated_, max_length_, decode_length_, bag_size_
        As in ``TextAutoencoder``.
    """

    _parameter_constraints = _SUPERVISED_CONSTRAINTS
    _fitted_attributes = (*_BaseTextAutoencoder._fitted_attributes, "target_mean_", "target_scale_", "n_labelled_")

    def __init__(self, latent_dim=64, *, architecture="bow", encoder=None, decoder=None,
                 freeze_encoder=True, encoder_lr=3e-5, static_encoder=False, tokenizer="auto", vocab_size="auto",
                 lowercase="auto", max_length="auto", embedding_dim=None, hidden_dim=256, num_layers=1, num_heads=4,
                 dropout=0.1, noise="auto", noise_type="delete", variational=False, kl_annealing_epochs=5,
                 free_bits=0.1, word_dropout="auto", max_epochs=60, batch_size=32, inference_batch_size=256,
                 lr="auto", validation_fraction=0.1, patience=3, device="auto", compile=False, data_parallel=False,
                 random_state=None,
                 verbose=0, callbacks=None, checkpoint_dir=None, reconstruction_weight=1.0, pretrained=None):
        self.latent_dim = latent_dim
        self.architecture = architecture
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        self.encoder_lr = encoder_lr
        self.static_encoder = static_encoder
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
        self.data_parallel = data_parallel
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.reconstruction_weight = reconstruction_weight
        self.pretrained = pretrained

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on texts ``X`` with targets ``y`` (NaN marks an unlabelled text).

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_texts,) or (n_texts, n_targets), float

        Returns
        -------
        self : TextAutoencoderRegressor

        Raises
        ------
        sktextae.NonFiniteLossError
            A NaN or infinite training loss, as in ``TextAutoencoder.fit``.
        """
        texts = check_texts(X)
        y = check_labels(y, len(texts), estimator=self)
        try:
            targets = y.astype(np.float64).reshape(len(y), -1)  # (n, n_targets)
        except (TypeError, ValueError):
            raise TypeError(f"y must hold numbers (NaN for unlabelled texts), got dtype {y.dtype}.") from None
        labelled = ~np.isnan(targets).any(axis=1)
        if not labelled.any():
            raise ValueError("Every target is NaN (unlabelled): at least one labelled text is needed. "
                             "To train on unlabelled texts alone, use TextAutoencoder.")
        if np.isinf(targets).any():
            raise ValueError("y holds an infinite value: pass finite targets (NaN for unlabelled texts).")
        mean, scale = targets[labelled].mean(axis=0), targets[labelled].std(axis=0)
        scale[scale == 0] = 1.0
        self._check_pretrained()
        standardised = ((targets - mean) / scale).astype(np.float32)
        fitting.fit_new(self, texts, epochs=self.max_epochs, labels=standardised, n_outputs=targets.shape[1],
                      reconstruction_weight=self.reconstruction_weight,
                      task="regression", pretrained=self.pretrained)
        if y.ndim == 1:  # scalars: predict returns 1-D
            mean, scale = mean[0], scale[0]
        self.target_mean_, self.target_scale_, self.n_labelled_ = mean, scale, int(labelled.sum())
        return self

    def predict(self, X):
        """Predicted targets of texts.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        y : ndarray of shape (n_texts,) or (n_texts, n_targets)
        """
        predictions = self._head_outputs(X) * self.target_scale_ + self.target_mean_  # (n, n_targets)
        return predictions[:, 0] if np.ndim(self.target_mean_) == 0 else predictions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        tags.target_tags.multi_output = True  # y may be (n_texts, n_targets)
        return tags
