"""A search and encoding on a Dask (and Ray) cluster of this machine beside the same work in one process.

1. Search: a 12-candidate ``GridSearchCV`` (``--grid``: latent_dim x lr x noise) with ``--cv`` folds on
   ``--n-train`` TREC training texts, ``--max-epochs`` epochs per fit, run serially in this process
   twice (with torch's default threads, one per core, and with one thread, the work one worker does)
   and then under ``joblib.parallel_backend("dask")`` on a ``LocalCluster`` of ``--workers``
   single-threaded worker processes. Reports the wall times (the cluster's start left out, given
   apart), their ratios to the one-thread search, and whether the searches agree (``best_params_``
   equal, ``mean_test_score`` within 1e-6).
2. Encoding: the serial search's best model encodes ``--n-encode`` texts (TREC's training texts,
   repeated), in this process (``transform``, with one thread and with torch's default), with
   ``sktextae.parallel.encode_dask`` on 1 and on ``--workers`` workers (a Bag of ``--partitions``
   partitions; its workers once as Dask starts them, with ``MALLOC_TRIM_THRESHOLD_=65536`` for glibc,
   and once without it, ``dask.config``'s ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_``
   set to None), and with Ray Data (``map_batches(RayEncoder, concurrency=n)``, batches of each of
   ``--ray-batch-sizes`` texts) when Ray is installed; ``--engines`` picks the engines.
   Reports texts/s, each worker's peak resident memory (the largest of the workers'; ``ru_maxrss`` of
   the worker's process, read on the worker), whether the vectors equal ``transform``'s, and where the
   engine's time went: ``busy_seconds``, the time the workers spent encoding, summed over them (Dask's
   task stream: the compute time of its encoding tasks; Ray: each batch's call of the encoder, timed
   in the actor), and ``engine_seconds``, the wall time less the busy time shared out over the workers
   (``seconds - busy_seconds / workers``): moving texts and vectors, scheduling, workers left idle.

``--tasks encode`` leaves the search out and encodes with the model the search picks by default
(``SEARCHED``, refitted on the same texts, as the search refits it); ``--hidden-dim`` then gives a
heavier encoder (more work per text for the same bytes moved).

Every process, this one and the workers (which inherit its environment), tokenizes with one thread of
the tokenizers' Rust pool (``RAYON_NUM_THREADS=1`` unless set), so that a worker's share is one core.
On 2 cores the defaults take about 20 minutes in all. The results go to ``results/<output>.{json,md}``.

    python benchmarks/bench_distributed.py [--data ../shared/data] [--n-train 2000] [--cv 3]
        [--max-epochs 3] [--architecture gru] [--workers 2] [--n-encode 100000] [--partitions 16]
        [--engines dask,ray] [--tasks search,encode] [--ray-batch-sizes 256,4096] [--output distributed_cpu]
"""

import argparse
import functools
import os
import resource
import time
import warnings

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the tokenizers' thread pool: read once, at its first use

import joblib
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, ParameterGrid

import _data
import _results
from sktextae import TextAutoencoder, TruncationWarning
from sktextae.parallel import RayEncoder, encode_dask

GRID = {"latent_dim": [16, 32, 64], "lr": [1e-3, 3e-3], "noise": [0.0, 0.1]}  # 12 candidates
SEARCHED = {"latent_dim": 32, "lr": 3e-3, "noise": 0.0}  # what the search picks with the defaults (distributed_cpu.md)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=_data.DEFAULT_DATA)
    parser.add_argument("--n-train", type=int, default=2000, help="TREC training texts the search fits on")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-encode", type=int, default=100000, help="texts to encode (TREC's, repeated)")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--engines", default="dask,ray", help="the engines that encode (Ray only where installed)")
    parser.add_argument("--tasks", default="search,encode", help="search, encode or both")
    parser.add_argument("--ray-batch-sizes", default="256,4096", help="texts per map_batches call, one run each")
    parser.add_argument("--output", default="distributed_cpu")
    return parser.parse_args(argv)


def estimator(args, **params):
    return TextAutoencoder(architecture=args.architecture, hidden_dim=args.hidden_dim, max_epochs=args.max_epochs,
                           validation_fraction=0, patience=None, random_state=0, device="cpu", **params)


def search(args, texts, backend=None):
    grid_search = GridSearchCV(
        estimator(args),
        GRID, cv=args.cv, n_jobs=None if backend is None else -1, error_score="raise")
    start = time.perf_counter()
    if backend is None:
        grid_search.fit(texts)
    else:
        with joblib.parallel_backend(backend):
            grid_search.fit(texts)
    return grid_search, time.perf_counter() - start


def peak_rss_mb():
    """This process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRayEncoder(RayEncoder):
    """``RayEncoder`` that adds to each batch its actor's peak resident memory (column ``peak_rss_mb``) and
    the seconds the call took, shared out over the batch's rows (column ``busy_s``)."""

    def __call__(self, batch):
        start = time.perf_counter()
        batch = super().__call__(batch)
        n = len(batch[self.output_column])
        return {**batch, "peak_rss_mb": np.full(n, peak_rss_mb()),
                "busy_s": np.full(n, (time.perf_counter() - start) / max(n, 1))}


def _pieces(texts, sizes):
    """``texts`` cut into consecutive pieces of ``sizes[0]``, each of those into pieces of ``sizes[1]``, ..."""
    if not sizes:
        yield texts
        return
    for start in range(0, len(texts), sizes[0]):
        yield from _pieces(texts[start:start + sizes[0]], sizes[1:])


def same_search(a, b):
    return (a.best_params_ == b.best_params_
            and np.allclose(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"], rtol=1e-6, atol=0))


def dask_cluster(n_workers):
    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, Client(cluster), time.perf_counter() - start


def _trim_threshold():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def encode_on_dask(model, texts, *, n_workers, partitions, trim_threshold=True):
    import dask
    import dask.bag
    from dask.distributed import get_task_stream

    # None unsets a variable of the workers' environment (distributed.nanny._get_env_variables).
    unset = {} if trim_threshold else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    # Dask's nanny sets its variables in this process too, before it starts a worker, and leaves them set: a
    # variable set here outweighs the configuration, and every process started from here later (Ray's too)
    # inherits it. This process's own setting is restored once the workers have started.
    own = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if not trim_threshold:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set(unset):
            cluster, client, startup = dask_cluster(n_workers)
    finally:
        if own is None:
            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        else:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = own
    try:
        settings = set(client.run(_trim_threshold).values())
        if settings != ({"65536"} if trim_threshold else {None}):
            raise RuntimeError(f"the workers' MALLOC_TRIM_THRESHOLD_ is {settings}: Dask's default changed")
        client.get_task_stream()  # starts the scheduler's record: the first task is then in it too
        with get_task_stream(client) as stream:
            start = time.perf_counter()
            latent = encode_dask(model, dask.bag.from_sequence(texts, npartitions=partitions), client=client).compute()
            seconds = time.perf_counter() - start
        busy = sum(period["stop"] - period["start"] for task in stream.data if "encode" in str(task["key"])
                   for period in task["startstops"] if period["action"] == "compute")
        return latent, seconds, startup, max(client.run(peak_rss_mb).values()), busy
    finally:
        client.close()
        cluster.close()


def encode_on_ray(model, texts, *, n_workers, partitions, batch_size=None):
    import ray

    if "MALLOC_TRIM_THRESHOLD_" in os.environ:  # set by hand or left by Dask: Ray's workers would inherit it
        raise RuntimeError("MALLOC_TRIM_THRESHOLD_ is set in this process: Ray's workers would start with it.")

    start = time.perf_counter()
    ray.init(num_cpus=n_workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    startup = time.perf_counter() - start
    try:
        dataset = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts)],
                                      override_num_blocks=partitions)
        start = time.perf_counter()
        rows = dataset.map_batches(PeakRayEncoder, fn_constructor_args=(model,), concurrency=n_workers,
                                   batch_size=batch_size or model.inference_batch_size).take_all()
        seconds = time.perf_counter() - start
        rows.sort(key=lambda row: row["id"])
        return (np.stack([row["latent"] for row in rows]), seconds, startup, max(row["peak_rss_mb"] for row in rows),
                sum(row["busy_s"] for row in rows))
    finally:
        ray.shutdown()


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    train, _ = _data.load_split(args.data, "trec", "train", max_texts=args.n_train)
    threads = torch.get_num_threads()
    rows = []

    tasks = set(args.tasks.split(","))
    if "search" in tasks:
        serial, serial_seconds = search(args, train)
        torch.set_num_threads(1)
        try:
            one_thread, one_thread_seconds = search(args, train)
        finally:
            torch.set_num_threads(threads)
        for n_threads, result, seconds in ((threads, serial, serial_seconds), (1, one_thread, one_thread_seconds)):
            rows.append(_results.stamp(dict(task="search", engine="in-process", workers=1, torch_threads=n_threads,
                                            seconds=seconds, startup_seconds=0.0, speedup=one_thread_seconds / seconds,
                                            same_results=same_search(serial, result), best_params=str(result.best_params_))))
        cluster, client, startup = dask_cluster(args.workers)
        try:
            distributed, seconds = search(args, train, backend="dask")
        finally:
            client.close()
            cluster.close()
        rows.append(_results.stamp(dict(task="search", engine="dask", workers=args.workers, torch_threads=1,
                                        seconds=seconds, startup_seconds=startup, speedup=one_thread_seconds / seconds,
                                        same_results=same_search(serial, distributed),
                                        best_params=str(distributed.best_params_))))

    if "encode" not in tasks:
        write(args, rows, train, threads, 0)
        return
    model = serial.best_estimator_ if "search" in tasks else estimator(args, **SEARCHED).fit(train)
    all_train, _ = _data.load_split(args.data, "trec", "train")
    texts = (all_train * -(-args.n_encode // len(all_train)))[:args.n_encode]
    timings, outputs = {}, {}
    for n_threads in (1, threads):
        torch.set_num_threads(n_threads)
        start = time.perf_counter()
        outputs[n_threads] = model.transform(texts)
        timings[n_threads] = time.perf_counter() - start
    # The engines' workers run one thread each: their vectors are compared with one thread's, whose sums
    # are split the same way (more threads split a matrix product's sums otherwise, which moves the last bits).
    expected = outputs[1]
    # The same texts in the pieces each engine hands its workers, encoded one after another in this process
    # with one thread: what encoding them piece by piece costs (each piece is batched by length on its own).
    block = -(-len(texts) // args.partitions)
    ray_batch_sizes = [int(size) for size in args.ray_batch_sizes.split(",")]
    pieces = {"in-process, as Dask's partitions": [block],
              **{f"in-process, as Ray's batches of {size}": [block, size] for size in ray_batch_sizes}}
    torch.set_num_threads(1)
    for engine, sizes in pieces.items():
        start = time.perf_counter()
        latent = np.concatenate([model.transform(piece) for piece in _pieces(texts, sizes)])
        timings[engine] = time.perf_counter() - start
        outputs[engine] = latent
    torch.set_num_threads(threads)
    in_process = timings[1]
    for key, seconds in timings.items():
        rows.append(_results.stamp(dict(
            task="encode", engine="in-process" if isinstance(key, int) else key, workers=1,
            torch_threads=key if isinstance(key, int) else 1, seconds=seconds, startup_seconds=0.0,
            texts_per_s=len(texts) / seconds, speedup=in_process / seconds,
            max_difference=float(np.abs(outputs[key] - expected).max()),
            same_results=bool(np.allclose(outputs[key], expected, rtol=1e-5, atol=1e-6)))))
    engines = []
    if "dask" in args.engines.split(","):
        engines += [("dask", encode_on_dask), ("dask, MALLOC_TRIM_THRESHOLD_ unset",
                                                functools.partial(encode_on_dask, trim_threshold=False))]
    if "ray" in args.engines.split(","):
        try:
            import ray.data  # noqa: F401
            engines += [(f"ray, batches of {size}", functools.partial(encode_on_ray, batch_size=size))
                        for size in ray_batch_sizes]
        except ImportError:
            pass
    for engine, encode in engines:
        for n_workers in sorted({1, args.workers}):
            latent, seconds, startup, peak, busy = encode(model, texts, n_workers=n_workers,
                                                          partitions=args.partitions)
            rows.append(_results.stamp(dict(
                task="encode", engine=engine, workers=n_workers, torch_threads=1, seconds=seconds,
                startup_seconds=startup, texts_per_s=len(texts) / seconds, speedup=in_process / seconds,
                worker_peak_mb=peak, busy_seconds=busy, engine_seconds=seconds - busy / n_workers,
                max_difference=float(np.abs(latent - expected).max()),
                same_results=bool(np.allclose(latent, expected, rtol=1e-5, atol=1e-6)))))
    write(args, rows, train, threads, len(texts))


def write(args, rows, train, threads, n_encoded):
    notes = [f"Model: architecture={args.architecture}, hidden_dim={args.hidden_dim}, max_epochs={args.max_epochs}, "
             f"fitted on {len(train)} TREC training texts; search: {len(ParameterGrid(GRID))} candidates x "
             f"{args.cv} folds, in process with torch's {threads} threads and with 1, each worker with 1; "
             f"the tokenizers' pool at {os.environ['RAYON_NUM_THREADS']} thread(s) in every process. "
             f"Encoding: {n_encoded} texts, {args.partitions} partitions (Dask) or blocks (Ray). `speedup` is the "
             f"one-thread in-process time over the row's; `startup_seconds` (the cluster's start) is not in "
             f"`seconds`; `worker_peak_mb` is the largest peak resident memory of the row's workers; "
             f"`busy_seconds` is the workers' time in the encoder, summed over them, and `engine_seconds` is "
             f"`seconds - busy_seconds / workers`. The rows `in-process, as ...` encode the same pieces as the "
             f"engine's workers, one after another, in this process with one thread. `same_results`: every vector "
             f"within rtol 1e-5, atol 1e-6 of one thread's `transform` in process; `max_difference`, the largest "
             f"absolute difference from it.",
             "Measured on a shared machine: compare rows of one run only."]
    _results.write(args.output, rows, ["task", "engine", "workers", "torch_threads", "seconds", "startup_seconds",
                                       "texts_per_s", "speedup", "worker_peak_mb", "busy_seconds", "engine_seconds",
                                       "same_results", "max_difference", "best_params"],
                   title="Searching and encoding on a Dask or Ray cluster of this machine", notes=notes)


if __name__ == "__main__":
    main()
