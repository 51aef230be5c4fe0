"""Small models, as a grid search meets them: does the from-scratch default collapse to one vector?

Fits ``TextAutoencoder`` at small widths on a stratified sample of a dataset's training texts, with
variants that change one thing each (``VARIANTS``), beside LSA at the same size, in one run. For each:
the epochs run and the best validation epoch, the spread of the training vectors (the mean over
latent units of their standard deviation across texts, against the mean magnitude of a unit: a
collapsed model maps every text to nearly one vector, so the ratio falls towards 0), and a linear
probe (StandardScaler + LogisticRegression trained on the training vectors, scored on the test split).

Some variants change the network, built here by patching the package for the length of one fit
(``patched``), as candidate fixes to measure before any goes into the package. Except ``start="package"``,
they patch the encoder they were written for, the mean of the token embeddings (``weighting="mean"``):

- ``bottleneck="batchnorm"``: the deterministic bottleneck's output standardised per latent unit
  (``BatchNorm1d(affine=False)``: batch statistics in training, running ones in ``transform``), so
  that the latent cannot shrink to one vector;
- ``pooling="idf"``: the encoder pools its token embeddings by a mean weighted by each token's inverse
  document frequency over the training texts (a buffer), as TF-IDF weighs them;
- ``start="lsa"``: the encoder's token embeddings start from LSA (a TruncatedSVD of width
  ``embedding_dim`` of the sublinear TF-IDF matrix of the training texts over the model's own
  tokens), each token's row scaled by its IDF (or not, with IDF pooling, which weighs it already),
  the whole table scaled so that a pooled text vector has a standard deviation of ``START_STD`` per
  unit across the training texts (or ``start_std``);
- ``start="package"``: the same start as the package computes it, ``sktextae.lsa_start.start_from_lsa``,
  from the texts of the fit's training split only, on the package's encoder
  (whose TF-IDF weighting postdates the results of 2026-12-06; they pooled by the mean);
- ``start="idf"``: the random embeddings, each token's row scaled by its IDF (the plain mean of such
  rows is an IDF-weighted sum over the text's length: IDF pooling with nothing new to save);
- ``min_epochs``: early stopping does not stop before that many epochs;
- ``embedding_lr``: the encoder's token embeddings train at that fraction of the learning rate.

``start`` is the package's default at a learning rate so small that its vectors are those it starts
from (one epoch): what training adds or loses is the default's score less this one. ``anchor_weight``
sets ``sktextae.training.ANCHOR_WEIGHT`` (the pull towards the LSA start) for the length of one fit, on
the package's own network (``no-anchor``: 0).

``decoder-first`` (a callback, ``DecoderFirst``, on the package's own network) trains the decoder alone,
the encoder and the bottleneck held at their start, until an epoch lowers the validation loss by less
than 1 %; then everything trains, early stopping's count of epochs without improvement starting again
(linear probing then fine-tuning, Kumar et al. 2022: a random decoder's first gradients no longer move
the LSA start).

    python benchmarks/bench_small_widths.py [--data ../shared/data] [--dataset ag_news] [--n-train 1200]
        [--n-test 1000] [--latent-dim 16] [--variants default,noise0,lr1e-3,...] [--seeds 0]
        [--output small_widths_cpu]
"""

import argparse
import contextlib
import copy
import time
from unittest import mock

import _data
import _results
import numpy as np
import scipy.sparse as sp
import torch
from bench_objectives import probe_and_cluster
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import normalize
from skorch.callbacks import Callback

import sktextae.nn
import sktextae.training
from sktextae import TextAutoencoder, fitting, network
from sktextae.batching import EOS_ID
from sktextae.lsa_start import start_from_lsa
from sktextae.nn.base import padding_mask
from sktextae.nn.bottleneck import DeterministicBottleneck
from sktextae.nn.bow import BIGRAM_WEIGHT, BagOfWordsEncoder
from sktextae.tokenization import encode, train_tokenizer

# The small configuration a grid search tries: latent 16, embeddings and hidden layer of 32, one layer.
SMALL = {"embedding_dim": 32, "hidden_dim": 32, "num_layers": 1, "max_length": 48}
VARIANTS = {
    "default": {},
    "full-length": {"max_length": "auto"},
    "noise0": {"noise": 0.0},
    "noise0.3": {"noise": 0.3},
    "lr1e-3": {"lr": 1e-3},
    "no-early-stop": {"patience": None, "max_epochs": 60},
    "hidden256": {"hidden_dim": 256},
    "embedding128": {"embedding_dim": 128},
    "embedding256": {"embedding_dim": 256},
    "embedding512": {"embedding_dim": 512},
    "batchnorm": {"bottleneck": "batchnorm"},
    "idf-pool": {"pooling": "idf"},
    "idf-start": {"start": "idf"},
    "lsa-start": {"start": "lsa"},
    "lsa-idf-pool": {"start": "lsa", "pooling": "idf"},
    "batchnorm-lsa": {"bottleneck": "batchnorm", "start": "lsa"},
    "batchnorm-idf-start": {"bottleneck": "batchnorm", "start": "idf"},
    "batchnorm-lsa-idf-pool": {"bottleneck": "batchnorm", "start": "lsa", "pooling": "idf"},
    "lsa-start-package": {"start": "package"},
    "lsa-start-std3": {"start": "lsa", "start_std": 3.0},
    "lsa-start-std10": {"start": "lsa", "start_std": 10.0},
    "lsa-start-noise0.3": {"start": "lsa", "noise": 0.3},
    "lsa-start-package-embedding-lr0.1": {"start": "package", "embedding_lr": 0.1},
    "lsa-start-package-patience6": {"start": "package", "patience": 6},
    "min-epochs10": {"min_epochs": 10},
    "lsa-start-noise0": {"start": "lsa", "noise": 0.0},
    "lsa-start-no-early-stop": {"start": "lsa", "patience": None, "max_epochs": 60},
    "decoder-first": {"callbacks": [("decoder_first", "DecoderFirst")]},
    "start": {"lr": 1e-12, "max_epochs": 1},
    "no-anchor": {"anchor_weight": 0.0},
    "no-anchor-lr1e-3": {"anchor_weight": 0.0, "lr": 1e-3},
    "patience10": {"patience": 10},
    "noise0.8": {"noise": 0.8},
    "lr1e-2": {"lr": 1e-2},
}
# What a variant sets besides the estimator's parameters.
NETWORK_OPTIONS = ("bottleneck", "pooling", "start", "start_std", "min_epochs", "embedding_lr")
START_STD = 1.0


class DecoderFirst(Callback):
    """Hold the encoder and the bottleneck at their start until the decoder alone stops improving (the
    ``decoder-first`` variant): from the first epoch whose validation loss is less than ``min_gain`` (a
    fraction) below the epoch before, everything trains, and early stopping's count of epochs without
    improvement starts again."""

    def __init__(self, min_gain=0.01):
        self.min_gain = min_gain

    def on_train_begin(self, net, **kwargs):
        self.held_ = True
        self._hold(net, True)

    def on_epoch_end(self, net, **kwargs):
        losses = net.history[:, "valid_loss"]
        if self.held_ and len(losses) >= 2 and losses[-2] - losses[-1] < self.min_gain * abs(losses[-2]):
            self.held_ = False
            self._hold(net, False)
            dict(net.callbacks_)["early_stopping"].misses_ = 0

    def on_train_end(self, net, **kwargs):
        self._hold(net, False)  # a fit that ended in the decoder's turn leaves nothing frozen

    @staticmethod
    def _hold(net, held):
        for name, weight in net.module_.named_parameters():
            if name.startswith(("encoder.", "bottleneck.")):
                weight.requires_grad_(not held)


class StandardizedBottleneck(DeterministicBottleneck):
    """The linear projection, then each latent unit standardised (batch statistics in training)."""

    def __init__(self, *, hidden_dim, latent_dim):
        super().__init__(hidden_dim=hidden_dim, latent_dim=latent_dim)
        self.norm = torch.nn.BatchNorm1d(latent_dim, affine=False)

    def forward(self, hidden):
        return self.norm(self.project(hidden)), None

    def mean(self, hidden):
        return self.norm(self.project(hidden))


class MeanEncoder(BagOfWordsEncoder):
    """The bag-of-words encoder that the variants' starts were written for: the mean of its token embeddings
    (``weighting="mean"``, the package's encoder before its TF-IDF one)."""

    def __init__(self, **sizes):
        super().__init__(**{**sizes, "weighting": "mean"})


class IdfPoolingEncoder(MeanEncoder):
    """The mean encoder, its token embeddings pooled by a mean weighted by ``idf`` (a buffer that
    ``start_encoder`` fills from the training texts; 1 everywhere until then)."""

    def __init__(self, **sizes):
        super().__init__(**sizes)
        self.register_buffer("idf", torch.ones(sizes["vocab_size"]))

    def forward(self, input_ids, lengths):
        weights = self.idf[input_ids] * ~padding_mask(lengths, input_ids.shape[1])  # (B, T)
        pooled = (weights[..., None] * self.embedding(input_ids)).sum(1) / weights.sum(1, keepdim=True)  # (B, C)
        return self.mlp(pooled)  # (B, H)


def token_statistics(sequences, vocab_size, *, idf=None):
    """Sublinear TF-IDF rows (L2-normalised, sparse) of the token sequences, and each token's smooth IDF
    (computed from the sequences unless given)."""
    rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(sequences))),
                           shape=(len(sequences), vocab_size))
    counts.sum_duplicates()
    if idf is None:
        n_docs = np.bincount(counts.indices, minlength=vocab_size)
        idf = np.log((1 + len(sequences)) / (1 + n_docs)) + 1  # TfidfVectorizer's smooth idf
    tfidf = counts.copy()
    tfidf.data = 1 + np.log(tfidf.data)
    tfidf = tfidf @ sp.diags(idf)
    norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-12)) @ tfidf, idf


@torch.no_grad()
def start_encoder(encoder, sequences, *, start, seed, start_std=START_STD):
    """Fill an encoder's IDF buffer and start its token embeddings (``start`` "lsa" or "idf") from the
    training sequences (token ids, without the EOS that the encoder reads after each)."""
    vocab_size, width = encoder.embedding.weight.shape
    tfidf, idf = token_statistics(sequences, vocab_size)
    # EOS ends every text: the IDF of a token in every text, the lowest.
    idf[EOS_ID] = 1.0
    pooled_by_idf = hasattr(encoder, "idf")
    if pooled_by_idf:
        encoder.idf.copy_(torch.as_tensor(idf, dtype=torch.float32))
    if start is None:
        return
    if start == "lsa":
        components = TruncatedSVD(min(width, min(tfidf.shape) - 1), random_state=seed).fit(tfidf).components_
        table = np.zeros((vocab_size, width))
        table[:, :components.shape[0]] = components.T  # (V, k): a token's loadings
    else:
        table = encoder.embedding.weight.double().numpy()
    if not (start == "lsa" and pooled_by_idf):
        table = table * idf[:, None]
    table[0] = 0.0  # padding
    # Scale the table so that the pooled text vectors spread as start_std per unit.
    weights = idf if pooled_by_idf else np.ones(vocab_size)
    pooled = np.stack([(weights[s, None] * table[s]).sum(0) / max(weights[s].sum(), 1e-12) for s in sequences])
    table *= start_std / max(pooled.std(0).mean(), 1e-12)
    encoder.embedding.weight.copy_(torch.as_tensor(table, dtype=torch.float32))


@contextlib.contextmanager
def patched(options, *, seed):
    """Build the networks of the fits inside with the variant's ``options`` (see the module docstring)."""
    originals = sktextae.nn.BagOfWordsEncoder, sktextae.nn.make_bottleneck, fitting.train
    make_bottleneck = originals[1]

    def bottleneck(kind, *, hidden_dim, latent_dim):
        if kind == "deterministic" and options.get("bottleneck") == "batchnorm":
            return StandardizedBottleneck(hidden_dim=hidden_dim, latent_dim=latent_dim)
        return make_bottleneck(kind, hidden_dim=hidden_dim, latent_dim=latent_dim)

    def train(estimator, sequences, labels=None, **kwargs):
        net = estimator.net_
        if not net.initialized_ and options:
            if options.get("embedding_lr"):
                net.set_params(optimizer__param_groups=[("*encoder.embedding.weight",
                                                         {"lr": net.lr * options["embedding_lr"]})])
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                net.initialize()
            encoder = network.autoencoder_of(net.module_).encoder
            if options.get("start") == "package":
                # The texts train() will train on: its first draw from rng is the split's order.
                order = copy.deepcopy(kwargs["rng"]).permutation(len(sequences))
                n_valid = fitting.n_validation(estimator.validation_fraction, len(sequences))
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    start_from_lsa(encoder, [sequences[i] for i in order[n_valid:]])
            else:
                start_encoder(encoder, sequences, start=options.get("start"), seed=seed,
                              start_std=options.get("start_std", START_STD))
        if options.get("min_epochs"):
            for name, callback in net.callbacks_:
                if name == "early_stopping":
                    callback.on_epoch_end = _after_epochs(callback, options["min_epochs"])
        return originals[2](estimator, sequences, labels, **kwargs)

    if options.get("pooling") == "idf":
        sktextae.nn.BagOfWordsEncoder = IdfPoolingEncoder
    elif options and options.get("start") != "package":
        sktextae.nn.BagOfWordsEncoder = MeanEncoder
    sktextae.nn.make_bottleneck, fitting.train = bottleneck, train
    try:
        yield
    finally:
        sktextae.nn.BagOfWordsEncoder, sktextae.nn.make_bottleneck, fitting.train = originals


def _after_epochs(callback, min_epochs):
    """EarlyStopping's epoch hook, its count of epochs without improvement held at 0 until ``min_epochs``
    epochs have run."""
    on_epoch_end = callback.on_epoch_end

    def hook(net, **kwargs):
        if len(net.history) < min_epochs:
            callback.misses_ = 0
        return on_epoch_end(net, **kwargs)

    return hook


def fit_variant(latent_dim, params, texts):
    """A ``TextAutoencoder`` of ``params`` (estimator parameters, ``NETWORK_OPTIONS`` and ``anchor_weight``)
    fitted on ``texts``, and its training vectors."""
    options = {key: params[key] for key in NETWORK_OPTIONS if key in params}
    anchor = params.get("anchor_weight", sktextae.training.ANCHOR_WEIGHT)
    params = {key: value for key, value in params.items() if key != "anchor_weight"}
    if params.get("callbacks"):  # named by VARIANTS, built here: each fit gets its own
        params = {**params, "callbacks": [(name, globals()[kind]()) for name, kind in params["callbacks"]]}
    model = TextAutoencoder(latent_dim, **{k: v for k, v in params.items() if k not in NETWORK_OPTIONS})
    with patched(options, seed=model.random_state or 0), \
            mock.patch.object(sktextae.training, "ANCHOR_WEIGHT", anchor):
        return model, model.fit_transform(texts)


def scores(train_vectors, train_labels, test_vectors, test_labels):
    """The probe's test accuracy and the KMeans NMI of the test vectors (``bench_objectives.probe_and_cluster``)."""
    result = probe_and_cluster(train_vectors, np.asarray(train_labels), test_vectors, np.asarray(test_labels),
                               random_state=0)
    return {"probe": round(result["accuracy"], 3), "nmi": round(result["nmi"], 3)}


def spread(vectors):
    """Mean per-unit standard deviation across texts, mean per-unit magnitude, and their ratio."""
    std, magnitude = float(vectors.std(axis=0).mean()), float(np.abs(vectors).mean())
    return std, magnitude, std / magnitude if magnitude else 0.0


def lsa_on_tokens(train, test, latent_dim, params):
    """LSA's training and test vectors over the tokens a model of ``params`` reads: its tokenizer trained
    on ``train`` the way ``fit`` trains it, each text cut to its ``max_length``."""
    model = TextAutoencoder(latent_dim, **{k: v for k, v in params.items() if k not in NETWORK_OPTIONS})
    settings = network.text_settings(model.get_params(deep=False))  # "auto" resolved as fit resolves it
    tokenizer = train_tokenizer(train, kind=settings["tokenizer"], vocab_size=settings["vocab_size"],
                                lowercase=settings["lowercase"], max_length=settings["max_length"])
    size = tokenizer.get_vocab_size()
    train_ids, test_ids = ([np.asarray(s) for s in encode(tokenizer, texts, max_length=settings["max_length"])[0]]
                           for texts in (train, test))
    tfidf, idf = token_statistics(train_ids, size)
    test_tfidf, _ = token_statistics(test_ids, size, idf=idf)
    svd = TruncatedSVD(latent_dim, random_state=0).fit(tfidf)
    return svd.transform(tfidf), svd.transform(test_tfidf)


def lsa_with_bigrams(train, test, latent_dim):
    """LSA's training and test vectors with bigrams beside the words, as the bag of words counts them: every
    word (scikit-learn's), and the bigrams two training texts or more hold, whose IDF is weighed by
    ``BIGRAM_WEIGHT``; sublinear TF-IDF, L2-normalised, then TruncatedSVD."""
    words, bigrams = CountVectorizer(), CountVectorizer(ngram_range=(2, 2), min_df=2)
    counts = sp.hstack([words.fit_transform(train), bigrams.fit_transform(train)]).tocsr()
    tfidf = TfidfTransformer(sublinear_tf=True, norm=None).fit(counts)
    scale = np.r_[np.ones(len(words.vocabulary_)), np.full(len(bigrams.vocabulary_), BIGRAM_WEIGHT)]

    def vectors(texts):
        counts = sp.hstack([words.transform(texts), bigrams.transform(texts)]).tocsr()
        return normalize(tfidf.transform(counts) @ sp.diags(scale))

    svd = TruncatedSVD(latent_dim, random_state=0).fit(vectors(train))
    return svd.transform(vectors(train)), svd.transform(vectors(test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--output", default="small_widths_cpu")
    args = parser.parse_args()
    train, train_labels = _data.load_split(args.data, args.dataset, "train", max_texts=args.n_train)
    test, test_labels = _data.load_split(args.data, args.dataset, "test", max_texts=args.n_test)
    lsa = make_pipeline(TfidfVectorizer(sublinear_tf=True), TruncatedSVD(args.latent_dim, random_state=0))
    rows = [_results.stamp({"benchmark": "small_widths", "dataset": args.dataset, "method": f"lsa-{args.latent_dim}",
                            **scores(lsa.fit_transform(train), train_labels, lsa.transform(test), test_labels),
                            "device": _results.device_name("cpu")})]
    bigram_train, bigram_test = lsa_with_bigrams(train, test, args.latent_dim)
    rows.append(_results.stamp({"benchmark": "small_widths", "dataset": args.dataset,
                                "method": f"lsa-{args.latent_dim} with bigrams as the model weighs them",
                                **scores(bigram_train, train_labels, bigram_test, test_labels),
                                "device": _results.device_name("cpu")}))
    token_train, token_test = lsa_on_tokens(train, test, args.latent_dim, SMALL)
    rows.append(_results.stamp({"benchmark": "small_widths", "dataset": args.dataset,
                                "method": f"lsa-{args.latent_dim} on the model's tokens",
                                **scores(token_train, train_labels, token_test, test_labels),
                                "device": _results.device_name("cpu")}))
    print(f"LSA-{args.latent_dim}: probe {rows[0]['probe']}; with bigrams {rows[1]['probe']}; on the model's tokens "
          f"{rows[2]['probe']}", flush=True)
    # A fit holds validation_fraction of its texts out for early stopping and learns from the rest: LSA of as
    # many texts, a random choice per seed.
    n_fit = len(train) - fitting.n_validation(TextAutoencoder().validation_fraction, len(train))
    for seed in (int(s) for s in args.seeds.split(",")):
        keep = np.random.RandomState(seed).permutation(len(train))[:n_fit]
        part = [train[i] for i in keep]
        rows.append(_results.stamp({"benchmark": "small_widths", "dataset": args.dataset, "seed": seed,
                                    "method": f"lsa-{args.latent_dim} of the {n_fit} texts a fit learns from",
                                    **scores(lsa.fit_transform(part), np.asarray(train_labels)[keep],
                                             lsa.transform(test), test_labels),
                                    "device": _results.device_name("cpu")}))
        print(f"{rows[-1]['method']}, seed {seed}: probe {rows[-1]['probe']}", flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.variants.split(","):
            params = {**SMALL, **VARIANTS[name], "random_state": seed}
            start = time.perf_counter()
            model, train_vectors = fit_variant(args.latent_dim, params, train)
            fit_seconds = time.perf_counter() - start
            history = model.net_.history
            valid = [row.get("valid_loss") for row in history]
            std, magnitude, ratio = spread(train_vectors)
            row = {"benchmark": "small_widths", "dataset": args.dataset, "method": f"sktextae {name}", "seed": seed,
                   "epochs": len(history), "best_epoch": int(np.argmin(valid)) + 1 if None not in valid else None,
                   "unit_std": round(std, 3), "unit_magnitude": round(magnitude, 3), "spread": round(ratio, 3),
                   **scores(train_vectors, train_labels, model.transform(test), test_labels),
                   "fit_seconds": round(fit_seconds, 1), "device": _results.device_name("cpu")}
            rows.append(_results.stamp(row))
            print(f"{name} seed {seed}: {row['epochs']} epochs (best {row['best_epoch']}), spread {row['spread']}, "
                  f"probe {row['probe']}", flush=True)
            _results.write(args.output, rows, ["method", "seed", "epochs", "best_epoch", "unit_std", "unit_magnitude",
                                               "spread", "probe", "nmi", "fit_seconds"],
                           title=f"Small widths on {args.dataset} ({args.n_train} training texts, latent "
                                 f"{args.latent_dim}, embeddings and hidden {SMALL['hidden_dim']})", quiet=True)
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
