"""One process of a data-parallel fit, started by ``tests/test_data_parallel.py`` under torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node N tests/_data_parallel_worker.py OUT PARAMS

Reads the texts from ``OUT/texts.json``, fits ``TextAutoencoder(**PARAMS, data_parallel=True)`` on them,
trains one more epoch with ``partial_fit``, saves the model to ``OUT/model`` and writes what this process
saw to ``OUT/rank<R>.json``: the target tokens of each training batch it trained on (per epoch), a digest
of its weights, its history, and its latent vectors of the first texts. With ``"kill_at_epoch": K`` in
PARAMS, rank 0 kills itself (SIGKILL) as epoch K begins, as a killed machine would.
"""

import hashlib
import json
import os
import pathlib
import signal
import sys

import torch
from skorch.callbacks import Callback

from sktextae import TextAutoencoder
from sktextae.tokenization import PAD_ID

torch.set_num_threads(1)


class SeenTargets(Callback):
    """The target tokens of every text of every training batch, per epoch."""

    def initialize(self):
        self.epochs_ = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.epochs_.append([])

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            targets = batch[1].tolist()  # (B, T), PAD_ID after each text
            self.epochs_[-1] += [[token for token in row if token != PAD_ID] for row in targets]


class KillRank0(Callback):
    """SIGKILL rank 0 at the first batch of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and torch.distributed.get_rank() == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def weights_digest(model):
    digest = hashlib.sha256()
    for name, tensor in model.net_.module_.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main():
    out, params = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2])
    texts = json.loads((out / "texts.json").read_text())
    callbacks = [("seen", SeenTargets())]
    if "kill_at_epoch" in params:
        callbacks.append(("kill", KillRank0(params.pop("kill_at_epoch"))))
    model = TextAutoencoder(**params, data_parallel=True, callbacks=callbacks)
    model.fit(texts)
    fit_epochs = len(dict(model.net_.callbacks_)["seen"].epochs_)  # the epochs that fit trained (after a resume)
    model.partial_fit(texts)
    rank = torch.distributed.get_rank()
    result = {
        "rank": rank, "world_size": torch.distributed.get_world_size(), "device": model.device_,
        "seen": dict(model.net_.callbacks_)["seen"].epochs_[:fit_epochs],
        "weights": weights_digest(model),
        "train_loss": model.net_.history[:, "train_loss"],
        "valid_loss": model.net_.history[:, "valid_loss"],
        "latent": model.transform(texts[:4]).tolist(),
        "saved": str(model.save(out / "model")),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    # Leave the job together: a process that exits while the other still talks to it can abort in gloo's
    # threads at exit.
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
