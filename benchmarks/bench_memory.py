"""Peak memory of training on the CPU as the corpus grows: is it bounded by the batch or by the corpus?

For each architecture (``TextAutoencoder(latent_dim=64, architecture=...)``, the package's defaults
otherwise) and each corpus size, a fresh process (so that no peak memory carries over from another
run) reads that many short real texts, fits one epoch on them (``max_epochs=1``, 10% held out for
the validation loss as by default, ``patience=None``) and reports:

- ``baseline_rss_mb``: the process' resident memory just before ``fit``, after the imports and
  reading the texts;
- ``peak_rss_mb``: its peak resident memory (``ru_maxrss``) by the end of ``fit``; ``fit_rss_mb`` is
  the peak less the baseline, what fitting added;
- ``end_rss_mb``: its resident memory after ``fit`` returned (what the allocator kept);
- ``fit_seconds``: the wall time of the whole ``fit`` (tokenizer, network and the epoch);
- ``vocab_size`` and ``parameters``: the fitted model's vocabulary (which a small corpus may not fill)
  and its number of weights;
- ``texts_mb``: what the texts themselves take (``sys.getsizeof`` of each and of their list), and
  ``ids_mb``: what their token ids take as the package holds them for a fit (encoded again after
  ``fit``, as ``fit`` encodes them): the part of the memory that any fit holds in proportion to the corpus;
- read after every training batch: ``n_batches``; ``longest_batch``, the most positions a batch was
  padded to, and ``first_longest_at``, the first batch that long; ``peak_by_batch``, the batch by whose
  end the process had reached its final peak (within 5 MB; empty when the peak came after the training
  pass, in the validation pass); ``rss_tenth_mb`` and ``rss_last_mb``, the resident memory held after
  the batch a tenth of the way through the epoch and after the last one (what the epoch accumulated
  between batches, as opposed to the transient peak inside one); ``largest_batch``, the most padded
  positions (texts times positions) a training batch held, ``peak_at_largest_mb``, the peak by the end
  of the first batch that large, and ``growth_after_largest_mb``, how far the peak rose after it, to
  the end of ``fit``. The largest batch sets the transient a step needs; what the peak gains after it
  is what the number of batches adds (a small corpus may never fill a batch of its longest texts, so
  its peak is lower for that reason alone).

The texts are ``_data.unlabelled_corpus(data, exclude="trec", max_texts=N)``: sentences and phrases of
4 to 40 words from SST-2, 20 Newsgroups and AG News, deduplicated and shuffled (about 159k of them);
a size beyond the texts there are is skipped and said so. With ``--dataset``, they are that dataset's
training texts instead, in a fixed shuffled order, the whole set repeated as often as a size needs (as
``bench_speed.py`` does). The parent process reads them once and hands each measuring process its
first N through a file, so that reading the datasets adds nothing to the peaks. ``--version`` labels
the rows (``before``/``after`` a change to the package): rows of other versions already in the results
file are kept, so one table holds both, side by side. A measuring process reads only its own texts.

``--malloc-mmap-threshold BYTES`` sets glibc's ``MALLOC_MMAP_THRESHOLD_`` in the measuring processes
alone (column ``malloc``): every buffer of that size or more is then mapped on its own and handed back
to the system when freed, so that what the heap's fragmentation adds to a peak shows as the difference
from the same run without it. A diagnostic only: the package must not need it.

The summary gives, per version and architecture, the peak's growth per 1,000 more texts between the
smallest and the largest size measured. Runs go one at a time; set ``OMP_NUM_THREADS=1`` for timings
that do not depend on the machine's load.

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py [--data ../shared/data] [--sizes 1000,10000,100000]
        [--architectures bow,gru,transformer] [--max-length 128] [--batch-size 32] [--dataset ag_news]
        [--malloc-mmap-threshold 65536] [--version after] [--output memory_cpu]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import _data
import _results

RESULT = "RESULT "  # prefix of the JSON line a measuring process prints
COLUMNS = ["version", "architecture", "texts", "malloc", "n_texts", "peak_rss_mb", "fit_rss_mb", "baseline_rss_mb", "end_rss_mb",
           "fit_seconds", "max_length", "batch_size", "n_batches", "longest_batch", "first_longest_at", "peak_by_batch",
           "rss_tenth_mb", "rss_last_mb", "largest_batch", "peak_at_largest_mb", "growth_after_largest_mb",
           "vocab_size", "parameters", "texts_mb", "ids_mb", "device"]
TITLE = "Training memory on the CPU: peak RSS of a one-epoch fit as the corpus grows"


def _peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _rss_mb():
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(architecture, texts, *, max_length, batch_size, latent_dim):
    """Fit one epoch in this process; its memory and time."""
    import torch

    from sktextae import TextAutoencoder, TruncationWarning

    warnings.filterwarnings("ignore", category=TruncationWarning)
    torch.manual_seed(0)
    trace = _Trace()
    model = TextAutoencoder(latent_dim, architecture=architecture, max_length=max_length, batch_size=batch_size,
                            max_epochs=1, validation_fraction=0.1, patience=None, device="cpu", random_state=0,
                            callbacks=[("trace", trace)])
    row = {"architecture": architecture, "n_texts": len(texts), "max_length": max_length, "batch_size": batch_size,
           "device": _results.device_name("cpu"), "baseline_rss_mb": _rss_mb(), "baseline_peak_rss_mb": _peak_rss_mb()}
    start = time.perf_counter()
    model.fit(texts)
    row["fit_seconds"] = time.perf_counter() - start
    row["peak_rss_mb"] = _peak_rss_mb()
    row["end_rss_mb"] = _rss_mb()
    row["fit_rss_mb"] = row["peak_rss_mb"] - row["baseline_rss_mb"]
    row["train_loss"] = float(model.net_.history[-1, "train_loss"])
    row["vocab_size"] = model.vocabulary_.encoder_size  # the model grows with it, up to its vocab_size
    row["parameters"] = sum(weight.numel() for weight in model.net_.module_.parameters())
    row.update(dict(model.net_.callbacks_)["trace"].summary(row["peak_rss_mb"]))
    row["texts_mb"] = (sys.getsizeof(texts) + sum(sys.getsizeof(text) for text in texts)) / 2**20
    row["ids_mb"] = _held_mb(model._encode(texts, warn=False)[0])
    return row


def _held_mb(ids):
    """The memory of a corpus' token ids: one flat array and its offsets, or one array per text and their list."""
    if hasattr(ids, "values"):  # sktextae.token_ids.TokenIds
        return (ids.values.nbytes + ids.starts.nbytes + ids.stops.nbytes) / 2**20
    return (sys.getsizeof(ids) + sum(sys.getsizeof(array) for array in ids)) / 2**20


def _trace_callback_base():
    from skorch.callbacks import Callback

    return Callback


class _Trace:
    """A skorch callback (made one on first use, so that the parent process need not import skorch) that
    reads the resident memory after every training batch: where the peak was reached, and how the memory
    held between batches moved over the epoch."""

    def __new__(cls):
        base = _trace_callback_base()
        kind = type("Trace", (base,), {"on_batch_end": _Trace.on_batch_end, "summary": _Trace.summary,
                                       "initialize": _Trace.initialize})
        return base.__new__(kind)

    def initialize(self):
        self.rss_, self.peaks_, self.lengths_, self.sizes_ = [], [], [], []
        return self

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            self.rss_.append(_rss_mb())
            self.peaks_.append(_peak_rss_mb())
            self.lengths_.append(int(batch[0]["input_ids"].shape[1]))
            self.sizes_.append(int(batch[0]["input_ids"].numel()))

    def summary(self, final_peak):
        n = len(self.rss_)
        if not n:
            return {}
        tenth = max(1, n // 10)
        longest = max(self.lengths_)
        at_largest = self.peaks_[self.sizes_.index(max(self.sizes_))]
        return {"n_batches": n, "longest_batch": longest, "first_longest_at": self.lengths_.index(longest) + 1,
                "peak_by_batch": next(i + 1 for i, peak in enumerate(self.peaks_) if peak >= final_peak - 5)
                if self.peaks_[-1] >= final_peak - 5 else None,
                "rss_tenth_mb": self.rss_[tenth - 1], "rss_last_mb": self.rss_[-1],
                "largest_batch": max(self.sizes_), "peak_at_largest_mb": at_largest,
                "growth_after_largest_mb": final_peak - at_largest}


def run_one(architecture, n_texts, texts_file, args):
    """Measure one architecture at one size in a fresh process; the row, or None (with the reason printed)."""
    command = [sys.executable, __file__, "--one", architecture, "--n-texts", str(n_texts), "--texts", texts_file,
               "--max-length", str(args.max_length), "--batch-size", str(args.batch_size),
               "--latent-dim", str(args.latent_dim)]
    env = dict(os.environ)
    if args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    # stderr (warnings, errors) passes through
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    results = [line[len(RESULT):] for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not results:
        print(f"{architecture} at {n_texts} texts failed (exit status {done.returncode}); skipped.", flush=True)
        return None
    return json.loads(results[-1])


def summary(rows, notes):
    """The peak's growth per 1,000 more texts, per version and architecture."""
    lines = ["## Growth of the peak from the smallest to the largest corpus", ""]
    runs = {}
    for row in rows:
        runs.setdefault((_label(row), row["architecture"]), []).append(row)
    for (version, architecture), group in runs.items():
        group = sorted(group, key=lambda row: row["n_texts"])
        first, last = group[0], group[-1]
        if len(group) < 2:
            lines.append(f"- {version}, {architecture}: one size only ({first['n_texts']} texts)")
            continue
        per_1k = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["n_texts"] - first["n_texts"]) * 1000
        lines.append(f"- {version}, {architecture}: peak {first['peak_rss_mb']} MB at {first['n_texts']} texts -> "
                     f"{last['peak_rss_mb']} MB at {last['n_texts']} ({per_1k:+.1f} MB per 1k more texts)")
        if all(row.get("growth_after_largest_mb") is not None for row in group):
            lines.append("  - the peak's rise after the largest batch first ran: " + ", ".join(
                f"{row['growth_after_largest_mb']:+} MB at {row['n_texts']} texts (largest batch "
                f"{row['largest_batch']} positions, peak by then {row['peak_at_largest_mb']} MB)" for row in group))
    commands = {}
    for row in rows:
        commands.setdefault((_label(row), row["command"]), row["date"])
    lines += ["", "Runs:", ""] + [f"- {label} ({date}): `{command}`" for (label, command), date in commands.items()]
    return lines + [""] + list(notes)


def _label(row):
    """A run's version, with the texts and the allocator setting where they are not the defaults."""
    extras = [f"{row['texts']} texts" if row.get("texts", "unlabelled") != "unlabelled" else "",
              f"MALLOC_MMAP_THRESHOLD_={row['malloc']}" if row.get("malloc", "default") != "default" else ""]
    return ", ".join([row["version"]] + [extra for extra in extras if extra])


def corpus(data, dataset, n_texts):
    """``n_texts`` of ``dataset``'s training texts in a fixed shuffled order, the whole set repeated as often
    as needed; or, without ``dataset``, up to ``n_texts`` of ``_data.unlabelled_corpus``."""
    if dataset is None:
        return _data.unlabelled_corpus(data, exclude="trec", max_texts=n_texts)
    import numpy as np

    texts, _ = _data.load_split(data, dataset, "train")
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[order[i % len(texts)]] for i in range(n_texts)]


def _rounded(row):
    return {key: (round(value, 1) if key in ("fit_seconds", "texts_mb", "ids_mb") else round(value, 4) if key == "train_loss"
                  else int(round(value))) if isinstance(value, float) else value
            for key, value in row.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--architectures", default="bow,gru,transformer")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--dataset", help="that dataset's training texts, repeated as needed (default: short "
                                          "unlabelled texts of the shared datasets but TREC)")
    parser.add_argument("--malloc-mmap-threshold", type=int, help="glibc's MALLOC_MMAP_THRESHOLD_ in the measuring "
                                                                  "processes (a diagnostic)")
    parser.add_argument("--version", default="current", help="labels the rows, e.g. before or after a change")
    parser.add_argument("--note", action="append", default=[], help="a line of Markdown under the table")
    parser.add_argument("--output", default="memory_cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this architecture in this process
    parser.add_argument("--n-texts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # the measuring process: one JSON line on stdout
        with open(args.texts) as file:  # one JSON string per line: only this process' texts are read
            texts = [json.loads(line) for line, _ in zip(file, range(args.n_texts))]
        row = measure(args.one, texts, max_length=args.max_length, batch_size=args.batch_size,
                      latent_dim=args.latent_dim)
        print(RESULT + json.dumps(row), flush=True)
        return

    sizes = [int(n) for n in args.sizes.split(",")]
    texts = corpus(args.data, args.dataset, max(sizes))
    notes = list(args.note)
    if len(texts) < max(sizes):
        short = [n for n in sizes if n > len(texts)]
        print(f"Only {len(texts)} texts: sizes {short} skipped.", flush=True)
        notes.append(f"Only {len(texts)} texts in the corpus: sizes {short} were skipped.")
        sizes = [n for n in sizes if n <= len(texts)]
    texts_label = args.dataset or "unlabelled"
    malloc = "default" if args.malloc_mmap_threshold is None else str(args.malloc_mmap_threshold)
    measured = []
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as texts_file:
        texts_file.writelines(json.dumps(text) + "\n" for text in texts)
        texts_file.flush()
        del texts
        for architecture in args.architectures.split(","):
            for n_texts in sizes:
                row = run_one(architecture, n_texts, texts_file.name, args)
                if row is None:
                    continue
                measured.append(_results.stamp({"version": args.version, "texts": texts_label, "malloc": malloc,
                                                **_rounded(row)}))
                print(f"{_label(measured[-1])}, {architecture} at {n_texts} texts: peak {row['peak_rss_mb']:.0f} MB "
                      f"(baseline {row['baseline_rss_mb']:.0f}), fit {row['fit_seconds']:.0f} s", flush=True)
                rows = _merged(args.output, measured)
                _results.write(args.output, rows, COLUMNS, title=TITLE, notes=summary(rows, notes), quiet=True)
    rows = _merged(args.output, measured)
    _results.write(args.output, rows, COLUMNS, title=TITLE, notes=summary(rows, notes))


def _merged(output, measured):
    """The rows already in ``results/<output>.json`` (read now, so that runs side by side keep each
    other's), less those this run measured again, then this run's: before and after in one table."""
    path = _results.RESULTS / f"{output}.json"
    rows = [{"texts": "unlabelled", "malloc": "default", **row} for row in
            (json.loads(path.read_text()) if path.exists() else [])]
    keys = {_key(row) for row in measured}
    return [row for row in rows if _key(row) not in keys] + list(measured)


def _key(row):
    return row["version"], row["texts"], row["malloc"], row["architecture"], row["n_texts"]


if __name__ == "__main__":
    main()
