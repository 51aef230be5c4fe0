"""sktextae: text autoencoders as scikit-learn estimators."""

from typing import TYPE_CHECKING

from ._version import __version__
from .exceptions import ModelFileError, ModelVersionWarning, NonFiniteLossError, TruncationWarning

if TYPE_CHECKING:
    from .estimator import TextAutoencoder
    from .supervised import TextAutoencoderClassifier, TextAutoencoderRegressor

__all__ = ["ModelFileError", "ModelVersionWarning", "NonFiniteLossError", "TextAutoencoder", "TextAutoencoderClassifier",
           "TextAutoencoderRegressor", "TruncationWarning", "__version__", "load"]

# The estimators, and with them torch, skorch and scikit-learn, are imported when one is first asked
# for (PEP 562), so that the command line (`sktextae --help`, `python -m sktextae --help`) answers
# without them. Importing them registers the classes by name (``registry``), which reading a saved
# folder needs: ``load`` imports them first.
_ESTIMATORS = ("TextAutoencoder", "TextAutoencoderClassifier", "TextAutoencoderRegressor")


def __getattr__(name):
    if name in _ESTIMATORS:
        return _import_estimators()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _import_estimators():
    from .estimator import TextAutoencoder
    from .supervised import TextAutoencoderClassifier, TextAutoencoderRegressor

    classes = {"TextAutoencoder": TextAutoencoder, "TextAutoencoderClassifier": TextAutoencoderClassifier,
               "TextAutoencoderRegressor": TextAutoencoderRegressor}
    globals().update(classes)  # later look-ups find them without __getattr__
    return classes


def load(path, *, device="auto"):
    """The model that ``save`` wrote to the folder ``path``, of whichever class it is.

    Nothing is unpickled and no name read from the folder is imported. A missing, damaged or edited
    file, weights that disagree with the config, or a format newer than this package reads raise
    ``ModelFileError`` naming the file. The optimizer state is not saved.

    Parameters
    ----------
    path : str or os.PathLike
    device : str, default="auto"
        Where the network goes: ``"auto"`` (CUDA when available, else the CPU) or a torch device.
    """
    from .persistence import load as load_folder

    _import_estimators()  # the classes a folder may hold, registered by name
    return load_folder(path, device=device)
