"""A search and encoding on a Dask (and Ray) cluster of this machine beside the same work in one process.

1. Search: a 12-candidate ``GridSearchCV`` (``--grid``: latent_dim x lr x noise) with ``--cv`` folds on
   ``--n-train`` TREC training texts, ``--max-epochs`` epochs per fit, run serially in this process
   (torch's default threads, one per core) and then under ``joblib.parallel_backend("dask")`` on a
   ``LocalCluster`` of ``--workers`` single-threaded worker processes. Reports both wall times (the
   cluster's start left out, given apart), their ratio, and whether the two searches agree
   (``best_params_`` equal, ``mean_test_score`` within 1e-6).
2. Encoding: the serial search's best model encodes ``--n-encode`` texts (TREC's training texts,
   repeated), in this process (``transform``), with ``sktextae.parallel.encode_dask`` on 1 and on
   ``--workers`` workers (a Bag of ``--partitions`` partitions), and with Ray Data
   (``map_batches(RayEncoder, concurrency=n)``) when Ray is installed. Reports texts/s and whether
   the vectors equal ``transform``'s.

On 2 cores the defaults take about 10 minutes in all. The results go to
``results/<output>.{json,md}``.

    python benchmarks/bench_distributed.py [--data ../shared/data] [--n-train 2000] [--cv 3]
        [--max-epochs 3] [--architecture gru] [--workers 2] [--n-encode 20000] [--partitions 16]
        [--no-ray] [--output distributed_cpu]
"""

import argparse
import time
import warnings

import joblib
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV

import _data
import _results
from sktextae import TextAutoencoder, TruncationWarning
from sktextae.parallel import RayEncoder, encode_dask

GRID = {"latent_dim": [16, 32, 64], "lr": [1e-3, 3e-3], "noise": [0.0, 0.1]}  # 12 candidates


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=_data.DEFAULT_DATA)
    parser.add_argument("--n-train", type=int, default=2000, help="TREC training texts the search fits on")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-encode", type=int, default=20000, help="texts to encode (TREC's, repeated)")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--no-ray", action="store_true", help="leave Ray out even where it is installed")
    parser.add_argument("--output", default="distributed_cpu")
    return parser.parse_args(argv)


def search(args, texts, backend=None):
    grid_search = GridSearchCV(
        TextAutoencoder(architecture=args.architecture, hidden_dim=args.hidden_dim, max_epochs=args.max_epochs,
                        validation_fraction=0, patience=None, random_state=0, device="cpu"),
        GRID, cv=args.cv, n_jobs=None if backend is None else -1, error_score="raise")
    start = time.perf_counter()
    if backend is None:
        grid_search.fit(texts)
    else:
        with joblib.parallel_backend(backend):
            grid_search.fit(texts)
    return grid_search, time.perf_counter() - start


def same_search(a, b):
    return (a.best_params_ == b.best_params_
            and np.allclose(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"], rtol=1e-6, atol=0))


def dask_cluster(n_workers):
    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, Client(cluster), time.perf_counter() - start


def encode_on_dask(model, texts, *, n_workers, partitions):
    import dask.bag

    cluster, client, startup = dask_cluster(n_workers)
    try:
        start = time.perf_counter()
        latent = encode_dask(model, dask.bag.from_sequence(texts, npartitions=partitions), client=client).compute()
        return latent, time.perf_counter() - start, startup
    finally:
        client.close()
        cluster.close()


def encode_on_ray(model, texts, *, n_workers, partitions):
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=n_workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    startup = time.perf_counter() - start
    try:
        dataset = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts)],
                                      override_num_blocks=partitions)
        start = time.perf_counter()
        rows = dataset.map_batches(RayEncoder, fn_constructor_args=(model,), concurrency=n_workers,
                                   batch_size=model.inference_batch_size).take_all()
        seconds = time.perf_counter() - start
        rows.sort(key=lambda row: row["id"])
        return np.stack([row["latent"] for row in rows]), seconds, startup
    finally:
        ray.shutdown()


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    train, _ = _data.load_split(args.data, "trec", "train", max_texts=args.n_train)
    threads = torch.get_num_threads()
    rows = []

    serial, serial_seconds = search(args, train)
    rows.append(_results.stamp(dict(task="search", engine="in-process", workers=1, torch_threads=threads,
                                    seconds=serial_seconds, startup_seconds=0.0, speedup=1.0, same_results=True,
                                    best_params=str(serial.best_params_))))
    cluster, client, startup = dask_cluster(args.workers)
    try:
        distributed, seconds = search(args, train, backend="dask")
    finally:
        client.close()
        cluster.close()
    rows.append(_results.stamp(dict(task="search", engine="dask", workers=args.workers, torch_threads=1,
                                    seconds=seconds, startup_seconds=startup, speedup=serial_seconds / seconds,
                                    same_results=same_search(serial, distributed),
                                    best_params=str(distributed.best_params_))))

    model = serial.best_estimator_
    all_train, _ = _data.load_split(args.data, "trec", "train")
    texts = (all_train * -(-args.n_encode // len(all_train)))[:args.n_encode]
    start = time.perf_counter()
    expected = model.transform(texts)
    in_process = time.perf_counter() - start
    rows.append(_results.stamp(dict(task="encode", engine="in-process", workers=1, torch_threads=threads,
                                    seconds=in_process, startup_seconds=0.0, texts_per_s=len(texts) / in_process,
                                    speedup=1.0, same_results=True)))
    engines = [("dask", encode_on_dask)]
    if not args.no_ray:
        try:
            import ray.data  # noqa: F401
            engines.append(("ray", encode_on_ray))
        except ImportError:
            pass
    for engine, encode in engines:
        for n_workers in sorted({1, args.workers}):
            latent, seconds, startup = encode(model, texts, n_workers=n_workers, partitions=args.partitions)
            rows.append(_results.stamp(dict(
                task="encode", engine=engine, workers=n_workers, torch_threads=1, seconds=seconds,
                startup_seconds=startup, texts_per_s=len(texts) / seconds, speedup=in_process / seconds,
                same_results=bool(np.allclose(latent, expected, rtol=1e-5, atol=1e-6)))))

    notes = [f"Search: {len(serial.cv_results_['params'])} candidates x {args.cv} folds on {len(train)} TREC "
             f"training texts, architecture={args.architecture}, hidden_dim={args.hidden_dim}, "
             f"max_epochs={args.max_epochs}; the in-process search uses torch's {threads} threads, each worker 1. "
             f"Encoding: {len(texts)} texts, {args.partitions} partitions (Dask) or blocks (Ray). `speedup` is the "
             f"in-process time over the row's; `startup_seconds` (the cluster's start) is not in `seconds`.",
             "Measured on a shared machine: compare rows of one run only."]
    _results.write(args.output, rows, ["task", "engine", "workers", "torch_threads", "seconds", "startup_seconds",
                                       "texts_per_s", "speedup", "same_results", "best_params"],
                   title="Searching and encoding on a Dask or Ray cluster of this machine", notes=notes)


if __name__ == "__main__":
    main()
