"""sktextae: text autoencoders as scikit-learn estimators."""

from .estimator import TextAutoencoder, TruncationWarning

__version__ = "0.1.0"
__all__ = ["TextAutoencoder", "TruncationWarning", "__version__"]
