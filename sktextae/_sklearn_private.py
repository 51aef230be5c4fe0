"""Every private scikit-learn and skorch name the package uses, in one place, so that an upgrade breaks
one file."""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions


def get_param_names(cls):
    """The names of an estimator class's ``__init__`` parameters (scikit-learn's ``_get_param_names``)."""
    return cls._get_param_names()


def copy_sklearn_configuration(source, target):
    """Carry over what scikit-learn's own ``clone`` carries besides the parameters: ``set_output``'s
    and the metadata-routing configuration (private attributes of scikit-learn's)."""
    import copy

    for attribute in ("_sklearn_output_config", "_metadata_request"):
        if hasattr(source, attribute):
            setattr(target, attribute, copy.deepcopy(getattr(source, attribute)))


def output_config(estimator):
    """What ``set_output`` configured on an estimator (None when nothing was)."""
    return getattr(estimator, "_sklearn_output_config", None)


def set_output_config(estimator, config):
    """Restore what ``set_output`` configured (a dict such as ``{"transform": "pandas"}``)."""
    estimator._sklearn_output_config = config


# Not here: callbacks.SyncFreeProgressBar overrides skorch's private ProgressBar._get_postfix_dict, the
# one hook skorch gives to change what the bar shows; a skorch upgrade that renames it breaks that class.

__all__ = ["Interval", "InvalidParameterError", "StrOptions", "_fit_context", "copy_sklearn_configuration", "get_param_names",
           "output_config", "set_output_config"]
