"""Checks of the fields a model folder's JSON holds (``config.json``'s network, parameters and fitted
attributes): each raises ``ValueError`` naming the field and the value it found, cut to a readable length."""

from numbers import Integral, Real


def check_int(value, what, low, high):
    if not isinstance(value, Integral) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {short(value)}")
    return int(value)


def check_number(value, what, low=None, high=None):
    if not isinstance(value, Real) or isinstance(value, bool) or value != value or value in (float("inf"),
                                                                                               float("-inf")):
        raise ValueError(f"{what} must be a finite number, got {short(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{what} must be in [{low}, {high}], got {short(value)}")
    return float(value)


def check_fields(data, names, what):
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(data).__name__}")
    missing, unknown = sorted(set(names) - set(data)), sorted(set(data) - set(names))
    if missing or unknown:
        raise ValueError(f"{what}: " + "; ".join(filter(None, [missing and f"missing fields {missing}",
                                                               unknown and f"unknown fields {unknown[:5]}"])))


def short(value):
    """A value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
