"""The skorch net that trains an autoencoder module: batching, device transfer, bf16 and the loss.

Only skorch's hooks are overridden (``get_iterator``, ``infer``, ``get_loss``); its ``fit`` loop,
callbacks and history are used as they are.
"""

import contextlib

import numpy as np
import torch
from skorch import NeuralNet
from torch.utils.data import DataLoader

from .batching import Collator, LengthBucketSampler

# The padding id is also the target padding: no real target is ever PAD_ID.
from .tokenization import PAD_ID


def token_log_probs(logits, target_ids):
    """Log-probability of each target token, 0 at padding: (B, T) for both decoder kinds.

    ``logits`` is (B, T, V) for a sequence decoder or (B, V) for a bag decoder, whose one
    distribution scores every token of the text.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    if log_probs.dim() == 2:
        log_probs = log_probs[:, None, :].expand(-1, target_ids.shape[1], -1)  # (B, T, V)
    picked = log_probs.gather(-1, target_ids[..., None]).squeeze(-1)  # (B, T)
    return picked.masked_fill(target_ids == PAD_ID, 0.0)


class AutoencoderNet(NeuralNet):
    """A ``skorch.NeuralNet`` for autoencoder modules fed by ``TokenDataset``.

    Parameters beyond ``NeuralNet``'s
    ---------------------------------
    shuffle_seed : int
        Seeds the order of the training batches (a fresh draw every epoch).
    use_bf16 : bool
        Run the module under bf16 autocast (CUDA only; the loss is computed in fp32).
    """

    def __init__(self, *args, shuffle_seed=0, use_bf16=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.shuffle_seed = shuffle_seed
        self.use_bf16 = use_bf16

    def initialize(self):
        self.shuffle_rng_ = np.random.default_rng(self.shuffle_seed)
        return super().initialize()

    def get_iterator(self, dataset, training=False):
        sampler = LengthBucketSampler(dataset.lengths, batch_size=self.batch_size, shuffle=training,
                                      rng=self.shuffle_rng_)
        collate = Collator(sequence_targets=self.module_.is_sequence_decoder)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                          pin_memory=torch.device(self.device).type == "cuda")

    def autocast(self):
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def infer(self, x, **fit_params):
        # non_blocking: with pinned batches the copy overlaps the previous step's compute.
        x = {key: value.to(self.device, non_blocking=True) for key, value in x.items()}
        with self.autocast():
            return self.module_(**x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, aux_loss = y_pred
        target_ids = y_true.to(self.device, non_blocking=True)
        n_tokens = (target_ids != PAD_ID).sum().clamp(min=1)
        loss = -token_log_probs(logits, target_ids).sum() / n_tokens
        return loss if aux_loss is None else loss + aux_loss


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; any other torch device string is checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda[:N]'.") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA GPU here: "
                         f"use device='auto' or 'cpu'.")
    return str(parsed)
