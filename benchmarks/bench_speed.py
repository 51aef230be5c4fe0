"""Fit and transform throughput and peak memory of every architecture beside LSA and MiniLM, at growing sizes.

For each corpus size (the dataset's training texts in a fixed shuffled order, repeated when the size
exceeds them) and each method, a fresh process (so that no peak memory carries over) fits on the
texts and then transforms them, on the same device, after an untimed warm-up (the same steps on
the first 256 texts, at most one batch, so that one-time costs such as lazy imports, thread pools and
CUDA kernel loading stay out of the timings), and reports:

- fit throughput, in tokens/s and texts/s per epoch: the model's own tokens of the texts (counted
  after fit with sktextae's fitted tokenizer, cut at ``max_length``; LSA's analyzer's words) x epochs
  / the time of the training epochs alone (skorch's per-epoch ``dur``). Tokenizer training, encoding
  the texts and building the network are left out of it; ``fit_seconds``, the wall time of the whole
  ``fit``, includes them. LSA's epoch is its whole fit; MiniLM is pretrained and not fitted.
- transform throughput in texts/s (sktextae: ``transform``; MiniLM: mean-pooled, normalised
  embeddings; LSA: ``transform``), with the same batch size for sktextae and MiniLM;
- peak memory: the process' peak RSS on a CPU (``baseline_memory_mb``: its peak before the method
  started, after imports and reading the texts), ``torch.cuda.max_memory_allocated`` on a GPU.

The models have the package's default sizes (``TextAutoencoder(latent_dim, architecture=...)``; the
GPU target is for the default transformer), trained on every text (no validation split), with
``--batch-size`` training batches and ``--inference-batch-size`` transform batches (MiniLM's too).
Each sktextae row also gives the training FLOP rate: torch's ``FlopCounterMode`` counts the FLOPs of
training steps on real batches, per real token (FLOPs spent on padding count as waste), times the
measured tokens/s; on a GPU listed in ``BF16_PEAK_TFLOPS``, ``mfu`` is that rate over the bf16 peak.
``FlopCounterMode`` counts only ops it has a formula for: a fused recurrent kernel (oneDNN's LSTM on
the CPU counts 0 FLOPs; cuDNN's GRU and LSTM on CUDA are likely the same) is left out, so the GRU and
LSTM rates are lower bounds, while the transformer's and bag of words' matrix products and attention
are all counted. The summary gives, per method, the time per text at the largest size over that
at the smallest (about 1 when time grows linearly, below 1 while fixed costs dominate), the memory
added per 1k texts between consecutive sizes, and each sktextae model's transform throughput over
MiniLM's, against the targets: on a GPU, transformer fit >= 1M tokens/s and transform >= 10x
MiniLM; on a CPU, transform >= 3x MiniLM.

    python benchmarks/bench_speed.py [--data ../shared/data] [--dataset ag_news] [--sizes 1000,10000,100000]
        [--methods lsa,minilm,sktextae-transformer,sktextae-gru,sktextae-lstm,sktextae-bow]
        [--max-epochs 1] [--batch-size 256] [--inference-batch-size 512] [--latent-dim 64] [--compile]
        [--largest minilm=1000,...] [--device auto] [--output speed]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

import _data
import _results
from bench_quality import lsa
from sktextae import TextAutoencoder, TruncationWarning
from sktextae.nn import ARCHITECTURES
from sktextae.device import resolve_device

METHODS = ["lsa", "minilm"] + [f"sktextae-{a}" for a in ("transformer", "gru", "lstm", "bow")]
RESULT = "RESULT "  # prefix of the JSON line a measuring process prints
WARM_UP = 256  # texts


def corpus(data, dataset, n_texts):
    """``n_texts`` real training texts in a fixed shuffled order, the whole set repeated as often as needed."""
    texts, _ = _data.load_split(data, dataset, "train")
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[order[i % len(texts)]] for i in range(n_texts)]


def measure(method, texts, *, device, max_epochs, batch_size, inference_batch_size, latent_dim, compile):
    """Fit and transform with one method in this process; its timings, token counts and peak memory."""
    cuda = torch.device(device).type == "cuda"
    row = {"method": method, "device": _results.device_name(device), "n_texts": len(texts),
           "baseline_memory_mb": 0 if cuda else _peak_rss_mb()}
    # The warm-up holds no more texts than a batch or the corpus, so its peak memory stays within the run's.
    warm_up = texts[:min(WARM_UP, batch_size)]
    if method == "minilm":
        import _minilm

        model = _minilm.load_minilm(device)
        model.encode(warm_up, inference_batch_size)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)  # the weights stay: loaded before, counted in the peak
        start = _clock(cuda)
        model.encode(texts, inference_batch_size)
        row["transform_seconds"] = _clock(cuda) - start
    elif method == "lsa":
        lsa(max(1, min(latent_dim, len(warm_up) // 4))).fit(warm_up).transform(warm_up)
        start = _clock(cuda)
        model = lsa(latent_dim).fit(texts)
        row["fit_seconds"] = row["epoch_seconds"] = _clock(cuda) - start
        start = _clock(cuda)
        model.transform(texts)
        row["transform_seconds"] = _clock(cuda) - start
        analyzer = model[0].build_analyzer()
        row.update(epochs=1, tokens_per_epoch=sum(len(analyzer(text)) for text in texts))
    else:
        from sktextae.tokenization import encode

        # The package's defaults (the default transformer is the one the speed targets name).
        model = TextAutoencoder(latent_dim, architecture=method.removeprefix("sktextae-"), max_epochs=1,
                                batch_size=batch_size, inference_batch_size=inference_batch_size,
                                validation_fraction=0, patience=None, device=device, compile=compile, random_state=0)
        model.fit(warm_up).transform(warm_up)
        model.set_params(max_epochs=max_epochs)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        start = _clock(cuda)
        model.fit(texts)
        row["fit_seconds"] = _clock(cuda) - start
        start = _clock(cuda)
        model.transform(texts)
        row["transform_seconds"] = _clock(cuda) - start
        if cuda:
            row["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20  # before counting FLOPs
        sequences, _ = encode(model.tokenizer_, texts, max_length=model.max_length_)
        row.update(epochs=len(model.net_.history), epoch_seconds=float(sum(model.net_.history[:, "dur"])),
                   tokens_per_epoch=int(sum(len(s) for s in sequences)),
                   train_flops_per_token=training_flops_per_token(model, sequences))
    row.setdefault("peak_memory_mb", torch.cuda.max_memory_allocated(device) / 2**20 if cuda else _peak_rss_mb())
    if "epoch_seconds" in row:
        row["fit_tokens_per_s"] = row["tokens_per_epoch"] * row["epochs"] / row["epoch_seconds"]
        row["fit_texts_per_s"] = len(texts) * row["epochs"] / row["epoch_seconds"]
    if row.get("train_flops_per_token"):
        row["fit_tflops_per_s"] = row["train_flops_per_token"] * row["fit_tokens_per_s"] / 1e12
        peak = bf16_peak_tflops(row["device"])
        row["mfu"] = row["fit_tflops_per_s"] / peak if peak else None
    row["transform_texts_per_s"] = len(texts) / row["transform_seconds"]
    return row


def training_flops_per_token(model, sequences, n_batches=8):
    """The FLOPs of a training step (forward, loss and backward, as torch's FlopCounterMode counts the
    matrix products and attention) per real token, over the first ``n_batches`` training batches.

    The FLOPs spent on padding count as waste: the total is divided by the real tokens only, so MFU
    below is the useful fraction of the GPU's peak.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from sktextae.batching import TokenDataset

    net = model.net_
    flops = tokens = 0
    # Counted on the plain module under a compiled one (the same weights): the FLOPs of the model's
    # arithmetic, whatever kernels torch.compile fuses it into.
    compiled = net.module_
    net.module_ = getattr(compiled, "_orig_mod", compiled)
    try:
        for i, (inputs, targets) in enumerate(net.get_iterator(TokenDataset(sequences), training=True)):
            if i == n_batches:
                break
            with FlopCounterMode(display=False) as counter:
                loss = net.get_loss(net.infer(inputs), targets, X=inputs, training=True)
                loss.backward()
            net.optimizer_.zero_grad(set_to_none=True)
            flops += counter.get_total_flops()
            tokens += int(inputs["lengths"].sum()) - len(inputs["lengths"])  # lengths count the EOS
    finally:
        net.module_ = compiled
    return flops / max(tokens, 1)


# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets.
BF16_PEAK_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H200": 989.4, "A100": 312.0}


def bf16_peak_tflops(device):
    """The GPU's dense bf16 peak, or None (a CPU, or a GPU not in the table)."""
    return next((peak for name, peak in BF16_PEAK_TFLOPS.items() if name in device), None)


def _clock(cuda):
    if cuda:
        torch.cuda.synchronize()  # queued kernels belong to the timed region
    return time.perf_counter()


def _peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def run_one(method, n_texts, args, device):
    """Measure one method at one size in a fresh process; the row, or None (with the reason printed)."""
    command = [sys.executable, __file__, "--one", method, "--n-texts", str(n_texts), "--data", args.data,
               "--dataset", args.dataset, "--max-epochs", str(args.max_epochs), "--batch-size", str(args.batch_size),
               "--inference-batch-size", str(args.inference_batch_size), "--latent-dim", str(args.latent_dim),
               "--device", device] + (["--compile"] if args.compile else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr (warnings, errors) passes through
    results = [line[len(RESULT):] for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not results:
        print(f"{method} at {n_texts} texts failed (exit status {done.returncode}); skipped.", flush=True)
        return None
    return json.loads(results[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256, help="sktextae's training batches")
    parser.add_argument("--inference-batch-size", type=int, default=512, help="transform, sktextae and MiniLM")
    parser.add_argument("--compile", action="store_true", help="fit sktextae with compile=True (torch.compile)")
    parser.add_argument("--latent-dim", type=int, default=64, help="sktextae and LSA")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--largest", default="", metavar="METHOD=N,...",
                        help="measure METHOD only at sizes <= N (for methods too slow for the largest sizes here)")
    parser.add_argument("--output", default="speed")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this method in this process
    parser.add_argument("--n-texts", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)

    if args.one:  # the measuring process: one JSON line on stdout
        warnings.filterwarnings("ignore", category=TruncationWarning)  # cut texts count as max_length tokens
        texts = corpus(args.data, args.dataset, args.n_texts)
        try:
            row = measure(args.one, texts, device=device, max_epochs=args.max_epochs, batch_size=args.batch_size,
                          inference_batch_size=args.inference_batch_size, latent_dim=args.latent_dim,
                          compile=args.compile)
        except (ImportError, OSError) as error:
            if args.one != "minilm":
                raise
            row = {"skipped": f"all-MiniLM-L6-v2 is not available: {error}"}
        print(RESULT + json.dumps(row), flush=True)
        return

    methods, sizes = args.methods.split(","), [int(n) for n in args.sizes.split(",")]
    unknown = [m for m in methods if m not in ("lsa", "minilm")
               and not (m.startswith("sktextae-") and m.removeprefix("sktextae-") in ARCHITECTURES)]
    if unknown:
        parser.error(f"unknown method(s) {unknown}: use {','.join(METHODS)}.")
    try:
        largest = {m: int(n) for m, n in (item.split("=") for item in args.largest.split(",") if item)}
    except ValueError:
        parser.error(f"--largest {args.largest!r}: use METHOD=N,..., e.g. minilm=1000.")
    rows = []
    for n_texts in sizes:
        for method in list(methods):
            if n_texts > largest.get(method, n_texts):
                continue
            row = run_one(method, n_texts, args, device)
            if row is not None and "skipped" in row:
                print(f"Skipping MiniLM: {row['skipped']}", flush=True)
                methods.remove(method)
                continue
            if row is None:
                continue
            rows.append(_results.stamp({"benchmark": "speed", **_rounded(row)}))
            fit = f"fit {row['fit_seconds']:.1f} s" if row.get("fit_seconds") is not None else "not fitted"
            print(f"{method} at {n_texts} texts: {fit}, "
                  f"transform {row['transform_texts_per_s']:.0f} texts/s, peak {row['peak_memory_mb']:.0f} MB",
                  flush=True)
            save(args.output, rows, quiet=True)  # keep what is done if a later run fails
    save(args.output, rows, quiet=False)


def _rounded(row):
    order = ["method", "device", "n_texts", "fit_tokens_per_s", "fit_texts_per_s", "transform_texts_per_s",
             "peak_memory_mb", "fit_tflops_per_s", "mfu", "train_flops_per_token", "baseline_memory_mb", "fit_seconds", "epoch_seconds", "transform_seconds", "epochs",
             "tokens_per_epoch"]
    digits = {"fit_seconds": 3, "epoch_seconds": 3, "transform_seconds": 3, "fit_tflops_per_s": 4, "mfu": 4}
    rounded = {}
    for key in order:
        value = row.get(key)
        if isinstance(value, float):
            value = round(value, digits[key]) if key in digits else max(1, int(round(value)))
        rounded[key] = value
    return rounded


def save(name, rows, *, quiet):
    """Write the table and, below it, the summary."""
    _results.write(name, rows, COLUMNS, title=TITLE, notes=summary(rows), quiet=quiet)


def summary(rows):
    """Growth with the corpus size per method, and sktextae's transform throughput against MiniLM's."""
    lines = ["## Growth from the smallest to the largest corpus", ""]
    by_method = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    for method, runs in by_method.items():
        runs = sorted(runs, key=lambda r: r["n_texts"])
        if len(runs) < 2:
            continue
        small, large = runs[0], runs[-1]
        ratios = [f"fit {(large['fit_seconds'] / large['n_texts']) / (small['fit_seconds'] / small['n_texts']):.2f}"
                  ] if large.get("fit_seconds") and small.get("fit_seconds") else []
        ratios.append(f"transform {small['transform_texts_per_s'] / large['transform_texts_per_s']:.2f}")
        memory = ", ".join(f"{1000 * (b['peak_memory_mb'] - a['peak_memory_mb']) / (b['n_texts'] - a['n_texts']):+.1f} "
                           f"({a['n_texts']}->{b['n_texts']})" for a, b in zip(runs, runs[1:]))
        lines.append(f"- {method}: time per text at {large['n_texts']} texts / at {small['n_texts']}: "
                     f"{', '.join(ratios)}; peak memory {small['peak_memory_mb']} -> {large['peak_memory_mb']} MB, "
                     f"MB per 1k more texts {memory}")
    if len(lines) == 2:
        lines = []
    minilm = max((r for r in rows if r["method"] == "minilm"), key=lambda r: r["n_texts"], default=None)
    if not rows:
        return lines
    gpu = not rows[0]["device"].startswith("cpu")
    lines += ([""] if lines else []) + ["## Targets", ""]
    if minilm is None:
        lines.append("- MiniLM was not measured: no transform ratio.")
    else:
        need = 10 if gpu else 3
        for row in rows:
            if row["method"].startswith("sktextae-") and row["n_texts"] == minilm["n_texts"]:
                ratio = row["transform_texts_per_s"] / minilm["transform_texts_per_s"]
                lines.append(f"- {row['method']} transform at {row['n_texts']} texts: {ratio:.1f}x MiniLM "
                             f"({'meets' if ratio >= need else 'misses'} the {'GPU' if gpu else 'CPU'} target of "
                             f">= {need}x)")
    if gpu:
        for row in rows:
            if row["method"] == "sktextae-transformer" and row["n_texts"] == max(r["n_texts"] for r in rows):
                meets = "meets" if row["fit_tokens_per_s"] >= 1e6 else "misses"
                mfu = f", MFU {row['mfu']:.1%} of the bf16 peak" if row.get("mfu") else ""
                lines.append(f"- sktextae-transformer fit at {row['n_texts']} texts: {row['fit_tokens_per_s']} "
                             f"tokens/s ({meets} the GPU target of >= 1M tokens/s){mfu}")
    return lines


COLUMNS = ["method", "n_texts", "fit_tokens_per_s", "fit_texts_per_s", "transform_texts_per_s", "peak_memory_mb",
           "fit_tflops_per_s", "mfu", "baseline_memory_mb", "fit_seconds", "epoch_seconds", "transform_seconds", "device"]
TITLE = "Speed: fit and transform throughput and peak memory, beside LSA and all-MiniLM-L6-v2"

if __name__ == "__main__":
    main()
