"""CPU transform throughput of ``transform`` beside the exported encoder run by onnxruntime, one thread each.

For the bow and transformer encoders at the package's default sizes (``TextAutoencoder(architecture=...)``),
fitted for one epoch on the texts (only speed is measured here, not quality), the model is exported
with ``export_onnx`` and both encode the same texts from raw text, each timed end to end:

- ``transform``: ``model.transform(texts)`` (tokenizing, length-bucketed batches of
  ``inference_batch_size``, the network under ``torch.inference_mode``), with ``torch.set_num_threads(1)``;
- ``onnxruntime``: the ``export_onnx`` docstring's recipe (the saved ``tokenizer.json``, the ids cut to
  ``max_length_``, EOS after them) in the same length-sorted batches of ``inference_batch_size``,
  padded with 0, through an ``InferenceSession`` with ``intra_op_num_threads=1`` and
  ``inter_op_num_threads=1``.

Each is warmed up once on all the texts, then timed ``--repeats`` times; the median is kept. ``max_abs_diff``
is the largest difference between the two sets of latent vectors.

Needs the onnx extra besides the benchmarks one (``pip install -e ".[benchmarks,onnx]"``).

    python benchmarks/bench_onnx.py [--data ../shared/data] [--n-texts 2000] [--repeats 3] [--output onnx_cpu]
"""

import argparse
import pathlib
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

import _data
import _results
from sktextae import TextAutoencoder, TruncationWarning

ARCHITECTURES = ("bow", "transformer")


def onnx_transform(session, tokenizer, texts, *, prefix, suffix, max_length, batch_size):
    """The latent vectors of ``texts`` from the exported encoder, tokenized as ``export_onnx`` documents."""
    tokenizer.encode_special_tokens = True
    rows = [prefix + encoding.ids[:max_length] + suffix
            for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]
    lengths = np.array([len(ids) for ids in rows], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    out = None
    for start in range(0, len(rows), batch_size):
        indices = order[start:start + batch_size]
        input_ids = np.zeros((len(indices), lengths[indices].max()), dtype=np.int64)  # (B, T), padded with 0
        for row, i in zip(input_ids, indices):
            row[:lengths[i]] = rows[i]
        latent, = session.run(["latent"], {"input_ids": input_ids, "lengths": lengths[indices]})
        if out is None:
            out = np.empty((len(rows), latent.shape[1]), dtype=np.float32)
        out[indices] = latent
    return out


def timed(function, repeats):
    """``function()``'s result and the median of ``repeats`` timings, after one untimed warm-up call."""
    result, seconds = function(), []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def measure(architecture, texts, *, repeats, folder):
    import onnxruntime
    from tokenizers import Tokenizer

    model = TextAutoencoder(architecture=architecture, max_epochs=1, validation_fraction=0, patience=None,
                            device="cpu", random_state=0).fit(texts)
    saved = model.save(folder / architecture)
    path = model.export_onnx(folder / f"{architecture}.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(saved / "tokenizer.json"))
    vocabulary = model.vocabulary_
    expected, transform_seconds = timed(lambda: model.transform(texts), repeats)
    latent, onnx_seconds = timed(lambda: onnx_transform(
        session, tokenizer, texts, prefix=list(vocabulary.encoder_prefix), suffix=list(vocabulary.encoder_suffix),
        max_length=model.max_length_, batch_size=model.inference_batch_size), repeats)
    difference = float(np.abs(latent - expected).max())
    common = {"architecture": architecture, "n_texts": len(texts), "latent_dim": model.latent_dim,
              "batch_size": model.inference_batch_size, "onnx_mb": path.stat().st_size / 2**20,
              "max_abs_diff": f"{difference:.1e}"}
    return [{**common, "runtime": "transform", "seconds": transform_seconds,
             "texts_per_s": len(texts) / transform_seconds, "device": _results.device_name("cpu")},
            {**common, "runtime": "onnxruntime", "seconds": onnx_seconds, "texts_per_s": len(texts) / onnx_seconds,
             "speedup": transform_seconds / onnx_seconds, "device": f"onnxruntime {onnxruntime.__version__} (1 thread)"}]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="onnx_cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=TruncationWarning)
    texts, _ = _data.load_split(args.data, "ag_news", "train", max_texts=args.n_texts)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for architecture in ARCHITECTURES:
            for row in measure(architecture, texts, repeats=args.repeats, folder=pathlib.Path(folder)):
                rows.append(_results.stamp({"benchmark": "onnx", **row}))
                print(f"{architecture} {row['runtime']}: {row['texts_per_s']:.0f} texts/s", flush=True)
    columns = ["architecture", "runtime", "texts_per_s", "speedup", "seconds", "n_texts", "batch_size", "latent_dim",
               "max_abs_diff", "onnx_mb", "device"]
    _results.write(args.output, rows, columns,
                   title="ONNX: transform beside the exported encoder in onnxruntime, on the CPU, one thread each",
                   notes=["Both encode from raw text (tokenizing included), in the same length-sorted batches; "
                          "`speedup` is `transform`'s time over onnxruntime's. Models at the package's default "
                          "sizes, fitted for one epoch on the same AG News training texts."])


if __name__ == "__main__":
    main()
