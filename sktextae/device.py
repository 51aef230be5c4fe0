"""Where a model runs: the one place that turns a ``device=`` parameter into a torch device and says
whether it is CUDA. The package runs on the CPU and on CUDA GPUs; other torch devices are refused."""

import torch

_KINDS = ("cpu", "cuda")


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; ``"cpu"`` and ``"cuda[:N]"`` are
    checked and returned in torch's spelling. Anything else raises ``ValueError`` (``TypeError`` for a
    value that is not a string) naming the values that work."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a str ('auto', 'cpu' or 'cuda[:N]'), got {type(device).__name__}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if parsed.type not in _KINDS:
        raise ValueError(f"device={device!r}: sktextae runs on the CPU or on CUDA GPUs, not on {parsed.type!r}: "
                         f"use 'auto', 'cpu' or 'cuda[:N]'.")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA GPU here: "
                         f"use device='auto' or 'cpu'.")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here, numbered "
                         f"from 0: use device='cuda' or a lower number.")
    return str(parsed)


def is_cuda(device):
    """Whether a device (a string or a ``torch.device``) is a CUDA GPU."""
    return torch.device(device).type == "cuda"


def fork_rng_devices(device):
    """The CUDA devices whose random state ``torch.random.fork_rng`` must save and restore for work on
    ``device``: none on the CPU."""
    device = torch.device(device)
    return [device.index or 0] if device.type == "cuda" else []
