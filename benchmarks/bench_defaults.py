"""The default configuration as a new user meets it: ``TextAutoencoder()`` fitted on 5,000 AG News
training texts on this machine's CPU, beside LSA at the same latent size, in one run.

Each configuration is the package's defaults, changed only by its ``--candidate`` overrides (the
first, ``default``, changes nothing). For each: the wall time of ``fit`` (tokenizer, network and every
epoch), the epochs run (early stopping on), and on the test split the linear probe, the probe trained
on 500 labels, and KMeans NMI, as in bench_quality.py. The target: ``fit`` within 10 minutes on a
2-core CPU, and a probe at most 2 points below LSA's.

    python benchmarks/bench_defaults.py [--data ../shared/data] [--dataset ag_news] [--max-train 5000]
        [--threads 2] [--candidate NAME:key=value,key=value ...] [--output defaults_cpu]
"""

import argparse
import ast
import time
import warnings

import torch

import _data
import _results
from bench_objectives import probe_and_cluster
from bench_quality import few_label_probe, lsa
from sktextae import TextAutoencoder, TruncationWarning


def parse_candidate(text):
    """``NAME:key=value,key=value`` -> (NAME, {key: value}); values are Python literals, else strings."""
    name, _, pairs = text.partition(":")
    overrides = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return name, overrides


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--max-train", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME:key=value,...")
    parser.add_argument("--output", default="defaults_cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X_train, y_train = _data.load_split(args.data, args.dataset, "train", max_texts=args.max_train)
    X_test, y_test = _data.load_split(args.data, args.dataset, "test")
    latent_dim = TextAutoencoder().latent_dim
    common = {"dataset": args.dataset, "n_train": len(X_train), "n_test": len(X_test), "latent_dim": latent_dim,
              "device": _results.device_name("cpu")}
    rows = []

    def add(row, Z_train, Z_test):
        row = {**common, **row, **probe_and_cluster(Z_train, y_train, Z_test, y_test, random_state=0),
               **few_label_probe(Z_train, y_train, Z_test, y_test, n_labels=500)}
        rows.append(_results.stamp(row))
        _results.write(args.output, rows, COLUMNS, title=TITLE, notes=summary(rows), quiet=True)
        print(f"{row['method']}: accuracy {row['accuracy']:.3f}, fit {row['fit_seconds']} s", flush=True)

    start = time.perf_counter()
    model = lsa(latent_dim).fit(X_train)
    add({"method": "lsa", "fit_seconds": round(time.perf_counter() - start, 2)},
        model.transform(X_train), model.transform(X_test))
    for name, overrides in [("default", {})] + [parse_candidate(text) for text in args.candidate]:
        estimator = TextAutoencoder(**{"random_state": 0, **overrides})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            estimator.fit(X_train)
        fit_seconds = round(time.perf_counter() - start, 2)
        add({"method": name, "overrides": overrides, "fit_seconds": fit_seconds, "epochs": len(estimator.net_.history),
             "encoder": estimator.net_.module_.encoder.__class__.__name__,
             "decoder": estimator.net_.module_.decoder.__class__.__name__},
            estimator.transform(X_train), estimator.transform(X_test))
    _results.write(args.output, rows, COLUMNS, title=TITLE, notes=summary(rows))


def summary(rows):
    baseline = next((r for r in rows if r["method"] == "lsa"), None)
    if baseline is None:
        return []
    lines = ["## Against the targets (fit within 600 s; probe at most 0.02 below LSA's)", ""]
    for r in rows:
        if r["method"] != "lsa":
            gap = baseline["accuracy"] - r["accuracy"]
            lines.append(f"- {r['method']}: fit {r['fit_seconds']} s ({'within' if r['fit_seconds'] <= 600 else 'over'} "
                         f"600 s), probe {r['accuracy']:.3f} against LSA's {baseline['accuracy']:.3f} "
                         f"({gap:+.3f} behind: {'met' if gap <= 0.02 else 'not met'})")
    return lines


COLUMNS = ["dataset", "method", "overrides", "latent_dim", "accuracy", "accuracy_few_labels", "nmi", "nmi_std", "epochs",
           "fit_seconds", "n_train", "n_test", "device"]
TITLE = "The default configuration: fit time and linear probe beside LSA"

if __name__ == "__main__":
    main()
