"""Checks on what users pass in: raw texts and latent matrices."""

import numbers
from collections.abc import Mapping, MappingView, Set

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_array


def check_texts(X, *, name="X", allow_empty=False):
    """Return ``X`` as a list of str, or raise an error that names the problem and its fix.

    Accepts a list, tuple, 1-D array, pandas Series or one-column DataFrame (any ordered iterable
    of str, a generator included). Empty strings are valid texts; None, NaN and pandas.NA are missing
    values and are refused. So are sets and mappings (see :func:`check_ordered`), and no texts at all
    unless ``allow_empty``. ``name`` is what the messages call the argument. The one check of texts
    in the package: the estimators and the tokenization functions all call it.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError("Iterable over raw text documents expected, string object received. "
                        "Wrap a single text in a list: [text].")
    check_ordered(X, name=name)
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas (or pandas-like) DataFrame
        if X.shape[1] != 1:
            raise ValueError(f"{name} is a DataFrame with {X.shape[1]} columns; pass the one column that holds "
                             f"the texts, e.g. X[\"text\"].")
        X = X.iloc[:, 0]
    if isinstance(X, np.ndarray) and X.ndim != 1:
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        else:
            raise ValueError(f"{name} must be 1-D (one text per row), got an array of shape {X.shape}.")
    try:
        texts = list(X)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of str (list, array, pandas Series), "
                        f"got {type(X).__name__}.") from None
    if not texts and not allow_empty:
        raise ValueError(f"{name} is empty: at least one text is needed.")
    if set(map(type, texts)) <= {str}:  # the usual case, checked without a Python loop: nothing to convert
        return texts
    for index, text in enumerate(texts):
        if isinstance(text, str):
            continue
        # pandas.NA (pandas' "string" dtype) by name: pandas is an optional dependency.
        # An int is never NaN, and np.isnan refuses one too large for a float (10**400 from JSON).
        not_a_number = isinstance(text, numbers.Real) and not isinstance(text, numbers.Integral) and np.isnan(text)
        if text is None or not_a_number or type(text).__name__ == "NAType":
            raise ValueError(f"{name}[{index}] is {text!r}, a missing value: drop it or replace it with \"\" first.")
        raise TypeError(f"{name}[{index}] is of type {type(text).__name__}, but every text must be a str: "
                        f"convert the texts with str() or drop the item.")
    return [str(text) for text in texts]  # np.str_ -> str


def check_ordered(texts, *, name):
    """Raise a TypeError if ``texts`` is a set, a mapping or a view of one.

    A set of str iterates in an order that follows string hashing, which is salted afresh in
    every Python process (``PYTHONHASHSEED``): the same call would give a different model, and
    its outputs in a different order, each time. A dict or dict view is refused too: whether its
    keys or its values are the texts is a guess, and its order is only that of insertion, which a
    dict built from a set takes from the set.
    """
    fix = f"sorted({name})"
    if isinstance(texts, (Mapping, MappingView)):  # before Set: dict.keys() and dict.items() are Sets too
        reason = "a mapping or a view of one, not a sequence of texts"
        if isinstance(texts, Mapping):
            fix += f" or list({name}.values())"
    elif isinstance(texts, Set):
        reason = "whose iteration order follows string hashing and changes from one Python process to the next"
    else:
        return
    raise TypeError(f"{name} is a {type(texts).__name__}, {reason}: pass a list, e.g. {fix}.")


def check_latent(Z, *, latent_dim):
    """Return ``Z`` as a float32 array of shape (n, latent_dim), or raise a ValueError naming ``Z``."""
    if np.shape(Z)[:1] == (0,):
        raise ValueError("Z holds no latent vectors: pass at least one row, such as the output of transform().")
    Z = check_array(Z, dtype=np.float32, input_name="Z")
    if Z.shape[1] != latent_dim:
        raise ValueError(f"Z has {Z.shape[1]} columns but this model's latent_dim is {latent_dim}: "
                         f"pass the output of transform().")
    return Z


def check_labels(y, n_texts, *, estimator):
    """``y`` as an array of one label per text (a classifier's 1-D; a regressor's 1-D or 2-D), each label
    kept as given, or an error naming the problem and the fix."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} needs labels: call fit(X, y).")
    labels = np.asarray(y)
    if labels.dtype.kind in "US" and not hasattr(y, "dtype"):
        # numpy turns a list that mixes str and numbers into str (["a", -1] -> ["a", "-1"]), which would
        # make -1 a class: keep each label as it was given.
        as_objects = np.asarray(y, dtype=object)
        if not all(isinstance(label, str) for label in as_objects.ravel()):
            labels = as_objects
    y = labels
    if y.ndim == 2 and y.shape[1] == 1 and is_classifier(estimator):
        y = y[:, 0]
    if y.ndim not in (1, 2) or (y.ndim == 2 and is_classifier(estimator)):
        raise ValueError(f"y must be 1-D (one label per text), got shape {y.shape}.")
    if len(y) != n_texts:
        raise ValueError(f"X has {n_texts} texts but y has {len(y)} labels: pass one label per text.")
    return y


def is_unlabelled(label, missing_is_unlabelled):
    if label is None or type(label).__name__ == "NAType":  # None, or pandas.NA
        return True
    if isinstance(label, numbers.Number) and not isinstance(label, bool):
        if isinstance(label, numbers.Real) and np.isnan(label):
            if missing_is_unlabelled:
                return True
            raise ValueError("y holds NaN: mark unlabelled texts with -1 (or None in an object array).")
        return label == -1
    return False


def unique_labels(labels):
    try:
        return np.unique(labels)
    except TypeError:
        types = sorted({type(label).__name__ for label in labels})
        raise TypeError(f"y mixes label types {types}: use one type for all labels (and -1 or None for "
                        f"unlabelled texts).") from None
