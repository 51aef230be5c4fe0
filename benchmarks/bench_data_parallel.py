"""Data-parallel training: one process beside torchrun jobs of 1 and 2 processes, same global batch.

Fits ``TextAutoencoder(--latent-dim, architecture=--architecture, batch_size=--batch-size)`` on TREC's
training questions for ``--epochs`` epochs (no early stopping, 10% held out), three ways, one after the
other, each process on one thread:

- ``one process``: ``data_parallel=False``, in a process of its own;
- ``job of 1`` and ``job of 2``: ``data_parallel=True`` under ``torchrun --standalone --nproc_per_node N``
  (gloo on the CPU, nccl with ``--device cuda``; ``--jobs`` gives the job sizes). The batch of
  ``--batch-size`` texts is split across the processes, so all of them take the same steps on the same
  batches. With ``--device cuda`` each process trains on the GPU of its local rank: a machine of one GPU
  runs ``--jobs 1``, the accelerated path beside one process on the same GPU.

Each row: the fit's wall time (rank 0, from the start of ``fit`` to its end, every process waiting for the
others at both ends), training tokens/s (the tokens of the training texts times the epochs, over that time),
the speed-up over ``one process``, the last epoch's training and validation losses, and the linear probe of
the vectors (StandardScaler + LogisticRegression on the training questions, scored on the 500 test ones).

    python benchmarks/bench_data_parallel.py [--data ../shared/data] [--epochs 3] [--batch-size 64]
        [--architecture gru] [--latent-dim 64] [--n-train 0] [--device cpu] [--jobs 1,2] [--output data_parallel_cpu]

The script runs itself in the worker processes (``--worker``); the results go to
``results/<output>.{json,md}``.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import _data
import _results

HERE = pathlib.Path(__file__).resolve()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=0, help="TREC training texts (0: all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--jobs", default="1,2", help="the sizes of the torchrun jobs, in processes")
    parser.add_argument("--output", default="data_parallel_cpu")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a JSON file to write this process's result to
    parser.add_argument("--data-parallel", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args):
    """One process's fit; rank 0 writes the result."""
    from sktextae import TextAutoencoder

    torch.set_num_threads(1)
    train, train_labels = _data.load_split(args.data, "trec", "train", max_texts=args.n_train or None)
    test, test_labels = _data.load_split(args.data, "trec", "test")
    model = TextAutoencoder(args.latent_dim, architecture=args.architecture, batch_size=args.batch_size,
                            max_epochs=args.epochs, patience=None, random_state=0, device=args.device,
                            data_parallel=args.data_parallel)
    synchronise = torch.distributed.barrier if args.data_parallel else (lambda: None)
    if args.data_parallel:  # joined here so that the timing leaves the group's start out
        from sktextae import data_parallel

        data_parallel.join(args.device)
    synchronise()
    start = time.perf_counter()
    model.fit(train)
    synchronise()
    seconds = time.perf_counter() - start
    rank = torch.distributed.get_rank() if args.data_parallel else 0
    if rank != 0:
        return
    n_valid = round(0.1 * len(train))
    tokens = sum(len(ids) for ids in model.tokenizer_.encode_batch(list(train)))  # all texts' tokens
    train_tokens = tokens * (len(train) - n_valid) / len(train) * args.epochs
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracy = probe.fit(model.transform(train), train_labels).score(model.transform(test), test_labels)
    history = model.net_.history
    result = {"processes": torch.distributed.get_world_size() if args.data_parallel else 1,
              "fit_seconds": round(seconds, 1), "tokens_per_second": round(train_tokens / seconds),
              "train_loss": round(history[-1, "train_loss"], 4), "valid_loss": round(history[-1, "valid_loss"], 4),
              "probe": round(float(accuracy), 3), "epochs": len(history)}
    pathlib.Path(args.worker).write_text(json.dumps(result))


def run(args, folder, name, processes):
    """One way of fitting, in fresh processes; its result."""
    out = pathlib.Path(folder) / f"{name.replace(' ', '_')}.json"
    options = ["--data", args.data, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--architecture", args.architecture, "--latent-dim", str(args.latent_dim),
               "--n-train", str(args.n_train), "--device", args.device, "--worker", str(out)]
    if processes:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   str(HERE), *options, "--data-parallel"]
    else:
        command = [sys.executable, str(HERE), *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, env=env, check=True, cwd=HERE.parent)
    return json.loads(out.read_text())


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    rows = []
    device = (f"{torch.cuda.get_device_name(0)} (one per process)" if args.device == "cuda"
              else "cpu (1 thread per process)")
    ways = [("one process", 0)] + [(f"job of {n}", n) for n in (int(size) for size in args.jobs.split(","))]
    with tempfile.TemporaryDirectory() as folder:
        for name, processes in ways:
            result = run(args, folder, name, processes)
            rows.append(_results.stamp({"benchmark": "data_parallel", "method": name, **result, "device": device}))
            print(f"{name}: {result}", flush=True)
    base = rows[0]["tokens_per_second"]
    for row in rows:
        row["speedup"] = round(row["tokens_per_second"] / base, 2)
    n_texts = f"{args.n_train} TREC questions" if args.n_train else "TREC's 5,452 training questions"
    _results.write(args.output, rows, ["method", "processes", "fit_seconds", "tokens_per_second", "speedup",
                                       "train_loss", "valid_loss", "probe", "epochs", "device"],
                   title=f"Data-parallel training on {device} ({args.architecture}, latent {args.latent_dim}, global "
                         f"batch {args.batch_size}, {args.epochs} epochs, {n_texts})")


if __name__ == "__main__":
    main()
