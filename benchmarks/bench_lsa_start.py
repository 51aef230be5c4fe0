"""Does a bag-of-words autoencoder that starts from the LSA solution keep or improve LSA's features?

A linear autoencoder's optimum under squared error is PCA, so one way to a from-scratch model at least
as good as LSA is to start its encoder from LSA and let reconstruction training improve on it. This
script measures that idea directly, outside the package's estimators, on the package's own tokenizer:

- ``lsa-words``: scikit-learn's LSA (``TfidfVectorizer(sublinear_tf=True, min_df=2)`` + ``TruncatedSVD``),
  the bar the benchmarks hold every from-scratch model to;
- ``lsa-bpe``: the same TF-IDF weighting and SVD over the tokens of the package's default tokenizer (a
  byte-level BPE of 4,000 tokens trained on the training texts): what a bag-of-tokens model starts from;
- ``lsa-<tokenizer>``: the same over other tokenizers the package can train (``TOKENIZERS``: lowercased
  BPE of 4,000 and 16,000 tokens, lowercased words and punctuation up to 20,000), to show how much of
  the gap to ``lsa-words`` is the tokenizer's;
- for each ``--variants``, an autoencoder whose encoder maps the (noised) sublinear TF-IDF vector of a
  text to ``latent_dim`` numbers, trained for ``--epochs`` to predict the text's bag of tokens (softmax
  cross-entropy, ``loss=ce``) or its TF-IDF vector (squared error, ``loss=mse``), with the linear probe
  on its vectors after every epoch (epoch 0: before training):
    - ``linear-lsa-ce``: a linear encoder started from the LSA loadings, a linear decoder;
    - ``linear-random-ce``: the same from a random start;
    - ``linear-lsa-mse``: the LSA start with squared error on the TF-IDF vector;
    - ``mlp-lsa-ce``: a linear layer of 128 started from LSA-128, then an MLP (GELU, 256) to the latent;
    - ``mlp-random-ce``: the same from a random start (close to the package's default architecture,
      but on TF-IDF input).

The probe is StandardScaler + LogisticRegression fitted on the training split, scored on the test split.

    python benchmarks/bench_lsa_start.py [--data ../shared/data] [--datasets trec,ag_news,sst2]
        [--latent-dim 64] [--epochs 6] [--noise 0.6] [--variants linear-lsa-ce,...] [--output lsa_start_cpu]
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import _data
import _results
from sktextae.tokenization import encode, train_tokenizer

VARIANTS = {  # name -> (encoder, start, loss)
    "linear-lsa-ce": ("linear", "lsa", "ce"),
    "linear-random-ce": ("linear", "random", "ce"),
    "linear-lsa-mse": ("linear", "lsa", "mse"),
    "mlp-lsa-ce": ("mlp", "lsa", "ce"),
    "mlp-random-ce": ("mlp", "random", "ce"),
}
TOKENIZERS = {"bpe4000-lower": ("bpe", 4000, True), "bpe16000-lower": ("bpe", 16000, True),
              "word20000-lower": ("word", 20000, True)}


def probe(Z_train, y_train, Z_test, y_test):
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Z_train, y_train)
    return round(float(classifier.score(Z_test, y_test)), 3)


class BagOfTokens:
    """Sublinear TF-IDF vectors and bag-of-token targets over the package's BPE tokenizer."""

    def __init__(self, texts):
        self.tokenizer = train_tokenizer(texts, kind="bpe", vocab_size=4000)
        self.size = self.tokenizer.get_vocab_size()
        counts = self.counts(self.ids(texts))
        n_docs = np.asarray((counts > 0).sum(0)).ravel()
        self.idf = np.log((1 + len(texts)) / (1 + n_docs)) + 1  # TfidfVectorizer's smooth idf

    def ids(self, texts):
        sequences, _ = encode(self.tokenizer, texts, max_length=128)
        return [np.asarray(s) for s in sequences]

    def counts(self, sequences):
        rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
        cols = np.concatenate(sequences) if sequences else np.zeros(0, int)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sequences), self.size))

    def tfidf(self, counts):
        """Dense (n, V) sublinear TF-IDF rows, L2-normalised: ``counts`` dense or sparse."""
        counts = torch.as_tensor(counts.toarray() if sp.issparse(counts) else counts, dtype=torch.float32)
        weighted = torch.where(counts > 0, 1 + torch.log(counts.clamp(min=1)), counts) * torch.as_tensor(
            self.idf, dtype=torch.float32)
        return weighted / weighted.norm(dim=1, keepdim=True).clamp(min=1e-8)


def noised_counts(bag, sequences, noise, rng):
    """Dense counts of each text with every token deleted with probability ``noise`` (one kept)."""
    counts = np.zeros((len(sequences), bag.size), np.float32)
    for i, sequence in enumerate(sequences):
        kept = sequence[rng.random(len(sequence)) >= noise] if noise else sequence
        np.add.at(counts[i], kept if len(kept) else sequence[:1], 1)
    return counts


def train_variant(variant, bag, svd_start, train_ids, encode_all, *, latent_dim, epochs, noise, lr, seed):
    """Train one variant; the probe inputs after every epoch (epoch 0 first)."""
    kind, start, loss_kind = VARIANTS[variant]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    width = latent_dim if kind == "linear" else 128
    first = torch.nn.Linear(bag.size, width)
    if start == "lsa":
        with torch.no_grad():
            components = torch.as_tensor(svd_start(width), dtype=torch.float32)
            # The MLP's first layer is scaled so that its outputs are of the order GELU works at.
            first.weight.copy_(components if kind == "linear" else components * np.sqrt(bag.size / width))
            first.bias.zero_()
    encoder = first if kind == "linear" else torch.nn.Sequential(
        first, torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(width, 256), torch.nn.GELU(),
        torch.nn.Linear(256, latent_dim))
    decoder = torch.nn.Linear(latent_dim, bag.size)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=lr)
    snapshots = [encode_all(encoder)]
    for _ in range(epochs):
        encoder.train()
        for batch in np.array_split(rng.permutation(len(train_ids)), max(1, len(train_ids) // 32)):
            sequences = [train_ids[i] for i in batch]
            inputs = bag.tfidf(noised_counts(bag, sequences, noise, rng))
            clean = torch.as_tensor(noised_counts(bag, sequences, 0.0, rng))
            output = decoder(encoder(inputs))
            if loss_kind == "mse":
                loss = ((output - bag.tfidf(clean)) ** 2).sum(1).mean()
            else:
                loss = -(clean / clean.sum(1, keepdim=True) * torch.log_softmax(output, -1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        snapshots.append(encode_all(encoder))
    return snapshots


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,ag_news,sst2")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="lsa_start_cpu")
    args = parser.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}: use {sorted(VARIANTS)}.")
    torch.set_num_threads(1)
    rows = []
    for dataset in args.datasets.split(","):
        train, y_train = _data.load_sample(args.data, dataset, "train")
        test, y_test = _data.load_sample(args.data, dataset, "test")
        base = {"benchmark": "lsa_start", "dataset": dataset, "latent_dim": args.latent_dim, "n_train": len(train),
                "n_test": len(test), "noise": args.noise, "device": _results.device_name("cpu")}
        words = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), TruncatedSVD(args.latent_dim,
                                                                                         random_state=0))
        rows.append(_results.stamp({**base, "method": "lsa-words", "epoch": "", "accuracy": probe(
            words.fit_transform(train), y_train, words.transform(test), y_test)}))
        bag = BagOfTokens(train)
        train_ids, test_ids = bag.ids(train), bag.ids(test)
        X_train = bag.tfidf(bag.counts(train_ids)).numpy()
        X_test = bag.tfidf(bag.counts(test_ids)).numpy()
        svd = TruncatedSVD(args.latent_dim, random_state=0).fit(X_train)
        rows.append(_results.stamp({**base, "method": "lsa-bpe", "epoch": "", "accuracy": probe(
            svd.transform(X_train), y_train, svd.transform(X_test), y_test)}))
        for name, (kind, vocab_size, lowercase) in TOKENIZERS.items():
            tokenizer = train_tokenizer(train, kind=kind, vocab_size=vocab_size, lowercase=lowercase)

            def joined(texts, tokenizer=tokenizer):  # token ids as words, for TfidfVectorizer
                return [" ".join(map(str, ids)) for ids in encode(tokenizer, texts, max_length=128)[0]]

            tokens = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, token_pattern=r"\S+"),
                                   TruncatedSVD(args.latent_dim, random_state=0))
            rows.append(_results.stamp({**base, "method": f"lsa-{name}", "epoch": "", "accuracy": probe(
                tokens.fit_transform(joined(train)), y_train, tokens.transform(joined(test)), y_test)}))
        print(dataset, [(row["method"], row["accuracy"]) for row in rows if row["dataset"] == dataset], flush=True)

        def svd_start(width):
            return svd.components_ if width == args.latent_dim else \
                TruncatedSVD(width, random_state=0).fit(X_train).components_

        def encode_all(encoder):
            encoder.eval()
            with torch.no_grad():
                return encoder(torch.as_tensor(X_train)).numpy(), encoder(torch.as_tensor(X_test)).numpy()

        for variant in args.variants.split(","):
            start = time.perf_counter()
            snapshots = train_variant(variant, bag, svd_start, train_ids, encode_all, latent_dim=args.latent_dim,
                                      epochs=args.epochs, noise=args.noise, lr=args.lr, seed=args.seed)
            seconds = round(time.perf_counter() - start, 1)
            scores = [probe(Z_train, y_train, Z_test, y_test) for Z_train, Z_test in snapshots]
            for epoch, accuracy in enumerate(scores):
                rows.append(_results.stamp({**base, "method": variant, "epoch": epoch, "accuracy": accuracy,
                                            "train_seconds": seconds}))
            print(f"  {variant}: probe per epoch {scores}", flush=True)
        _results.write(args.output, rows, ["dataset", "method", "latent_dim", "epoch", "accuracy", "n_train",
                                           "n_test", "noise", "device"],
                       title="Bag-of-words autoencoders started from LSA: the linear probe per epoch", quiet=True)
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
