"""The package's estimator classes by name: the names a saved folder's ``config.json`` records and the
command line offers. Each public estimator class registers itself where it is defined; nothing is
ever imported from a name read from a file."""

ESTIMATORS = {}


def register(cls):
    """Class decorator: record ``cls`` under its name."""
    ESTIMATORS[cls.__name__] = cls
    return cls


def estimator_names():
    return tuple(ESTIMATORS)
