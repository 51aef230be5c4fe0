"""sktextae: text autoencoders as scikit-learn estimators."""

from .estimator import TextAutoencoder, TruncationWarning
from .supervised import TextAutoencoderClassifier, TextAutoencoderRegressor

__version__ = "0.2.0"
__all__ = ["TextAutoencoder", "TextAutoencoderClassifier", "TextAutoencoderRegressor", "TruncationWarning",
           "__version__"]
