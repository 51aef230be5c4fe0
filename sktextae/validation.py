"""Checks on what users pass in: raw texts and latent matrices."""

import numbers

import numpy as np
from sklearn.utils import check_array


def check_texts(X):
    """Return ``X`` as a list of str, or raise an error that names the problem and its fix.

    Accepts a list, tuple, 1-D array, pandas Series or one-column DataFrame (any iterable of str).
    Empty strings are valid texts; None, NaN and pandas.NA are missing values and are refused.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError("Iterable over raw text documents expected, string object received. "
                        "Wrap a single text in a list: [text].")
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas (or pandas-like) DataFrame
        if X.shape[1] != 1:
            raise ValueError(f"X is a DataFrame with {X.shape[1]} columns; pass the one column that holds "
                             f"the texts, e.g. X[\"text\"].")
        X = X.iloc[:, 0]
    if isinstance(X, np.ndarray) and X.ndim != 1:
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        else:
            raise ValueError(f"X must be 1-D (one text per row), got an array of shape {X.shape}.")
    try:
        texts = list(X)
    except TypeError:
        raise TypeError(f"X must be an iterable of str (list, array, pandas Series), "
                        f"got {type(X).__name__}.") from None
    if not texts:
        raise ValueError("X is empty: at least one text is needed.")
    for index, text in enumerate(texts):
        if isinstance(text, str):
            continue
        # pandas.NA (pandas' "string" dtype) by name: pandas is an optional dependency.
        if text is None or (isinstance(text, numbers.Real) and np.isnan(text)) or type(text).__name__ == "NAType":
            raise ValueError(f"X[{index}] is {text!r}, a missing value: drop it or replace it with \"\" first.")
        raise TypeError(f"X[{index}] is of type {type(text).__name__}, but every text must be a str: "
                        f"convert the texts with str() or drop the item.")
    return [str(text) for text in texts]  # np.str_ -> str


def check_latent(Z, *, latent_dim):
    """Return ``Z`` as a float32 array of shape (n, latent_dim), or raise a ValueError."""
    Z = check_array(Z, dtype=np.float32, input_name="Z")
    if Z.shape[1] != latent_dim:
        raise ValueError(f"Z has {Z.shape[1]} columns but this model's latent_dim is {latent_dim}: "
                         f"pass the output of transform().")
    return Z
