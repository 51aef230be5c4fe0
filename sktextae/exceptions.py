"""The package's public exceptions and warnings, in one leaf module that imports nothing of the package."""


class ModelFileError(ValueError):
    """A file the package reads cannot be used: a saved model folder (or a pickle), a checkpoint, or a
    pretrained model folder that is missing, damaged, edited, crafted or too new. The message names the
    file and, where there is one, the field."""


class ModelVersionWarning(UserWarning):
    """A pickled estimator was written by another version of sktextae: it may not work as it did."""


class TruncationWarning(UserWarning):
    """Some texts were longer than ``max_length`` tokens and were cut."""


class NonFiniteLossError(FloatingPointError):
    """Training gave a NaN or infinite loss (or weights): ``fit`` stopped at that epoch.

    The network keeps the weights it had at the start of the epoch that diverged: those of the end
    of the last epoch whose losses were finite, or the weights before the first step when the first
    epoch diverged. ``epoch`` is that epoch's number in ``net_.history`` (from 1) and ``batch`` the
    first batch of its training pass with a non-finite loss (from 1; None when every loss was finite
    but the last step left non-finite weights).
    """

    def __init__(self, message, *, epoch, batch):
        super().__init__(message)
        self.epoch, self.batch = epoch, batch
