"""A fitted model's encoder as an ONNX graph: token ids and lengths -> latent vectors, what ``transform``
computes (the encoder, then the bottleneck's mean), for inference without torch or this package.

The graph reads ``input_ids`` (batch, length) int64, padded with 0, and ``lengths`` (batch,) int64, the
real tokens of each row, and writes ``latent`` (batch, latent_dim) float32; batch and length are free.
Needs ``pip install "sktextae[onnx]"`` (onnx and onnxscript to export, onnxruntime to run the graph).
"""

import copy
import logging
import os
import uuid
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .batching import pad
from .files import PARTIAL, check_writable_target, fsync
from .network import autoencoder_of
from .nn import PretrainedEncoder, TransformerEncoder

INPUT_NAMES, OUTPUT_NAMES = ("input_ids", "lengths"), ("latent",)
_MIN_TORCH = "2.6"  # torch.onnx.export(dynamo=True, dynamic_shapes=...) with onnxscript's translations


class LatentEncoder(nn.Module):
    """An autoencoder's encoder and the mean of its bottleneck: (B, T) ids, (B,) lengths -> (B, L) latent.

    With ``max_positions`` (an encoder with position embeddings, which end there), only the first
    ``max_positions`` positions of each row are read, the most that ``transform`` gives the encoder: the
    padding may run past them. Not for the others: torch's decomposition of a GRU or LSTM fails on a
    sequence length of ``min(T, max_positions)``, and they read any padding anyway.
    """

    def __init__(self, *, encoder, bottleneck, max_positions=None):
        super().__init__()
        self.encoder, self.bottleneck, self.max_positions = encoder, bottleneck, max_positions

    def forward(self, input_ids, lengths):
        if self.max_positions is not None:
            input_ids, lengths = input_ids[:, :self.max_positions], lengths.clamp(max=self.max_positions)  # (B, T')
        return self.bottleneck.mean(self.encoder(input_ids, lengths))  # (B, L)


def _require_exporter():
    if torch.torch_version.TorchVersion(torch.__version__) < _MIN_TORCH:
        raise ImportError(f"export_onnx() needs torch>={_MIN_TORCH}, found {torch.__version__}.")
    try:
        import onnx  # noqa: F401  (the exporter writes and checks the graph with it)
        import onnxscript  # noqa: F401  (the exporter's operator translations)
    except ImportError as error:
        raise ImportError(f'export_onnx() needs onnx and onnxscript ({error}): pip install "sktextae[onnx]".') \
            from error


def export_onnx(estimator, path, *, opset=None):
    """Write the encoder of a fitted estimator to the file ``path``; see ``TextAutoencoder.export_onnx``."""
    check_is_fitted(estimator)
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool) or opset < 18):
        raise ValueError(f"opset must be an int >= 18 (the exporter's lowest) or None for its default, "
                         f"got {opset!r}.")
    _require_exporter()
    # Checked before the export, which takes minutes for a large model: a path that cannot take the file.
    path = check_writable_target(path, what="export_onnx()")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder: export_onnx() writes one file. Pass a file path such as "
                         f"{str(path / 'encoder.onnx')!r}.")
    autoencoder = autoencoder_of(estimator.net_.module_)  # the network uncompiled, without a supervised head
    # A copy on the CPU in float32 and eval mode: the estimator's own network stays where and as it was.
    vocabulary = estimator.vocabulary_
    max_positions = len(vocabulary.encoder_prefix) + estimator.max_length_ + len(vocabulary.encoder_suffix)
    positional = isinstance(autoencoder.encoder, (TransformerEncoder, PretrainedEncoder))
    module = copy.deepcopy(LatentEncoder(encoder=autoencoder.encoder, bottleneck=autoencoder.bottleneck,
                                         max_positions=max_positions if positional else None))
    module = module.to("cpu", torch.float32).eval()
    # Two rows of different lengths, neither of size 1 in any dimension: torch.export would specialise
    # a dimension of size 1 into a constant.
    token = min(5, vocabulary.encoder_size - 1)
    example = pad([np.full(min(3, estimator.max_length_), token), np.full(1, token)], prefix=vocabulary.encoder_prefix,
                  suffix=vocabulary.encoder_suffix)
    # The exporter writes to a path, not a handle: a hidden temporary file beside the target, renamed onto
    # it once complete (the exporter opens it as open() does, so the umask gives its mode).
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL}"
    try:
        _export(module, example, temporary, opset=opset)
        fsync(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync(path.parent)
    return path


def _export(module, example, path, *, opset):
    """``torch.onnx.export`` with the dynamo exporter (torch.export, then onnxscript's translations).

    Not the legacy TorchScript exporter: tracing bakes the example's batch size into the reshapes of
    ``nn.MultiheadAttention`` (the exported Transformer encoder fails on any other batch size), and it
    is deprecated since torch 2.9. One file, no external data: the temporary file is moved into place.
    """
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Notes on torch.export's own internals, which the caller can do nothing about.
            warnings.filterwarnings("ignore", message=r".*(LeafSpec|The axis name|_check_is_size|were assigned "
                                                      r"during export)")
            torch.onnx.export(module, example, str(path), input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), opset_version=opset, dynamo=True,
                              dynamic_shapes={"input_ids": {0: batch, 1: length}, "lengths": {0: batch}},
                              external_data=False, verbose=False)
    except Exception as error:
        if isinstance(module.encoder, PretrainedEncoder):
            raise ValueError(f"exporting this pretrained encoder ({type(module.encoder.model).__name__}) to ONNX "
                             f"is not supported yet: torch.onnx.export failed with {type(error).__name__}: "
                             f"{error}") from error
        raise
    finally:
        quiet.setLevel(level)
