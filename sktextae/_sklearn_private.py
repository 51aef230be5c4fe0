"""Every private scikit-learn and skorch name the package uses, in one place, so that an upgrade breaks
one file."""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions


def get_param_names(cls):
    """The names of an estimator class's ``__init__`` parameters (scikit-learn's ``_get_param_names``)."""
    return cls._get_param_names()


__all__ = ["Interval", "InvalidParameterError", "StrOptions", "_fit_context", "get_param_names"]
