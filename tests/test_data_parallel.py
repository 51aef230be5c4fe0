"""Data-parallel training (``data_parallel=True``): the batch split, the checks, and real fits of two
processes launched by torchrun with the gloo backend, beside the same fit in one process."""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TEXTS

import sktextae
from sktextae import TextAutoencoder, data_parallel
from sktextae.data_parallel import SplitBatches

WORKER = os.path.join(os.path.dirname(__file__), "_data_parallel_worker.py")
# Without dropout and noise, a step of the job and a step of one process see the same batches (the same
# seed orders them), so their losses differ only by how each process's share weighs its tokens.
PARAMS = dict(latent_dim=8, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2, vocab_size=300,
              max_epochs=4, batch_size=8, validation_fraction=0.1, patience=None, random_state=0, noise=0.0,
              dropout=0.0, lr=0.01, device="cpu")


# ------------------------------------------------------------------------------------------- the split

def test_split_batches_gives_each_process_a_disjoint_share_that_makes_each_batch_whole():
    batches = [[5, 1, 7, 3, 9], [2, 8, 0, 4, 6], [10, 11]]
    shares = [list(SplitBatches(batches, rank=rank, world_size=2)) for rank in range(2)]
    assert [len(share) for share in shares] == [3, 3]  # every process takes part in every step
    for i, batch in enumerate(batches):
        assert sorted(shares[0][i] + shares[1][i]) == sorted(batch)
        assert not set(shares[0][i]) & set(shares[1][i])
    assert len(SplitBatches(batches, rank=0, world_size=2)) == 3


def test_a_batch_smaller_than_the_job_still_gives_every_process_a_text():
    shares = [list(SplitBatches([[4, 7]], rank=rank, world_size=3)) for rank in range(3)]
    assert shares == [[[4]], [[7]], [[4]]]


def test_work_computed_in_shares_outside_a_job_is_the_whole(monkeypatch):
    asked = []

    def compute(indices):
        asked.append(indices.tolist())
        return np.arange(len(indices) * 2, dtype=np.float32).reshape(-1, 2) + 10 * indices[:, None]

    monkeypatch.setattr(data_parallel.dist, "all_gather_object", lambda out, part: out.__setitem__(0, part))
    rows = data_parallel.computed_in_shares(3, compute)
    assert asked == [[0, 1, 2]]
    np.testing.assert_array_equal(rows, compute(np.arange(3)))


# ------------------------------------------------------------------------------------------- checks

def test_fit_outside_a_distributed_job_says_how_to_launch_one(monkeypatch, texts):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        TextAutoencoder(**{**PARAMS, "max_epochs": 1}, data_parallel=True).fit(texts)


def test_data_parallel_must_be_a_boolean(texts):
    with pytest.raises(ValueError, match="data_parallel"):
        TextAutoencoder(**PARAMS, data_parallel="yes").fit(texts)


# ------------------------------------------------------------------------------------------- two processes

def run_job(tmp_path, n_processes, params, *, killed=False):
    """Run the worker under torchrun; the results of every rank (none when rank 0 is ``killed``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "texts.json").write_text(json.dumps(list(TEXTS)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
               WORKER, str(tmp_path), json.dumps(params)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if killed:
        assert done.returncode != 0 and "SIGKILL" in done.stdout + done.stderr, done.stderr[-3000:]
        return None
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(n_processes)]


@pytest.fixture(scope="module", params=["bow", "gru", "frozen bert", "fine-tuned bert"])
def two_processes(request, tmp_path_factory):
    if request.param.endswith("bert"):
        # Frozen: its outputs are computed once, in shares. Fine-tuned: its pooler takes no part in the loss.
        pytest.importorskip("transformers")
        from test_pretrained import save_tiny_bert

        bert = save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-data-parallel"), TEXTS)
        params = {**PARAMS, "encoder": str(bert), "freeze_encoder": request.param == "frozen bert", "decoder": "gru",
                  "max_length": 60, "embedding_dim": None, "vocab_size": "auto", "lr": 3e-3, "encoder_lr": 1e-3}
    else:
        params = {**PARAMS, "architecture": request.param}
    ranks = run_job(tmp_path_factory.mktemp("job"), 2, params)
    single = TextAutoencoder(**params).fit(list(TEXTS))
    single.partial_fit(list(TEXTS))
    return params, ranks, single


def test_each_process_trains_on_its_own_share_of_every_batch(two_processes, texts):
    params, ranks, single = two_processes
    n_train = len(texts) - round(params["validation_fraction"] * len(texts))
    for epoch in range(params["max_epochs"]):
        shares = [collections.Counter(map(tuple, rank["seen"][epoch])) for rank in ranks]
        assert sum(shares[0].values()) == sum(shares[1].values()) == n_train // 2
        assert not set(shares[0]) & set(shares[1])  # different texts in each process
        assert sum((shares[0] + shares[1]).values()) == n_train  # together, every training text once


def test_the_processes_end_with_the_same_model(two_processes, texts):
    _, ranks, _ = two_processes
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["latent"] == ranks[1]["latent"]
    assert ranks[0]["valid_loss"] == ranks[1]["valid_loss"]
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]  # averaged over the processes


def test_the_loss_falls_as_in_one_process(two_processes):
    params, ranks, single = two_processes
    job, alone = np.array(ranks[0]["train_loss"]), np.array(single.net_.history[:, "train_loss"])
    assert len(job) == len(alone) == params["max_epochs"] + 1
    assert job[-1] < 0.95 * job[0]
    np.testing.assert_allclose(job, alone, rtol=0.03)
    np.testing.assert_allclose(ranks[0]["valid_loss"], single.net_.history[:, "valid_loss"], rtol=0.03)


def test_only_rank_0_writes_the_model_and_it_loads(two_processes):
    _, ranks, _ = two_processes
    assert ranks[0]["saved"] == ranks[1]["saved"]
    loaded = sktextae.load(ranks[0]["saved"])
    assert loaded.data_parallel is True
    np.testing.assert_allclose(loaded.transform(list(TEXTS[:4])), ranks[0]["latent"], rtol=1e-5, atol=1e-6)
    siblings = os.listdir(os.path.dirname(ranks[0]["saved"]))
    assert sorted(name for name in siblings if "model" in name) == ["model"]  # one folder, no leftovers


def test_rank_0_alone_writes_checkpoints_and_a_killed_job_resumes_from_them(tmp_path):
    params = {**PARAMS, "architecture": "gru", "checkpoint_dir": str(tmp_path / "checkpoints")}
    run_job(tmp_path / "killed", 2, {**params, "kill_at_epoch": 3}, killed=True)
    folder = tmp_path / "checkpoints"
    assert (folder / "LATEST").read_text().strip() == "epoch-0002"
    kept = sorted(name for name in os.listdir(folder) if not name.startswith(".sktextae-checkpoints"))
    assert kept == ["LATEST", "epoch-0002"]  # one writer: the older checkpoint removed, no other process' files

    resumed = run_job(tmp_path / "resumed", 2, params)
    whole = run_job(tmp_path / "whole", 2, {**params, "checkpoint_dir": str(tmp_path / "other")})
    assert not folder.exists() and not (tmp_path / "other").exists()  # finished: nothing left to resume
    for rank in range(2):
        assert resumed[rank]["weights"] == resumed[0]["weights"]
        # The last two epochs trained after the resume: only those were seen by this job's processes.
        assert len(resumed[rank]["seen"]) == params["max_epochs"] - 2
    np.testing.assert_allclose(resumed[0]["train_loss"], whole[0]["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(resumed[0]["valid_loss"], whole[0]["valid_loss"], rtol=1e-5)
