"""sktextae: text autoencoders as scikit-learn estimators."""

from ._version import __version__
from .estimator import TextAutoencoder
from .exceptions import ModelFileError, ModelVersionWarning, NonFiniteLossError, TruncationWarning
from .supervised import TextAutoencoderClassifier, TextAutoencoderRegressor

__all__ = ["ModelFileError", "ModelVersionWarning", "NonFiniteLossError", "TextAutoencoder", "TextAutoencoderClassifier",
           "TextAutoencoderRegressor", "TruncationWarning", "__version__", "load"]


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

    return load_folder(path, device=device)
