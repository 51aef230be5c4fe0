"""Turning latent vectors back into token sequences, batched on the module's device."""

import numpy as np
import torch

from .tokenization import BOS_ID, EOS_ID


def greedy_decode(module, latent, *, max_length):
    """Decode each latent vector by taking the most probable token at every step.

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder (``init_state`` and ``step``).
    latent : torch.Tensor of shape (n, latent_dim)
    max_length : int
        The most tokens produced per text; a text that has not produced EOS by then is cut there.

    Returns
    -------
    list of numpy.ndarray
        The token ids of each text, without BOS or EOS.
    """
    batch = latent.shape[0]
    state = module.init_state(latent)
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=latent.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=latent.device)
    steps = []
    for _ in range(max_length + 1):  # + 1: the EOS after max_length tokens
        logits, state = module.step(tokens, state)
        tokens = logits.argmax(dim=-1).masked_fill(finished, EOS_ID)  # (B,)
        steps.append(tokens)
        finished |= tokens == EOS_ID
        if bool(finished.all()):
            break
    ids = torch.stack(steps, dim=1).cpu().numpy()  # (B, steps)
    return [_until_eos(row)[:max_length] for row in ids]


def _until_eos(row):
    stop = np.flatnonzero(row == EOS_ID)
    return row[:stop[0]] if len(stop) else row


def bag_decode(logits, *, n_tokens):
    """The ``n_tokens`` most probable tokens of each bag, most probable first: (n, V) -> list of arrays."""
    top = logits.topk(min(n_tokens, logits.shape[-1]), dim=-1).indices  # (B, k)
    return list(top.cpu().numpy())
