"""Can each architecture learn to reconstruct its training texts? Token accuracy against chance.

Trains every architecture on the same few hundred short real sentences (the first paragraphs of
standard-library docstrings, 3 to 8 words: no download needed) and measures
``inverse_transform(transform(X))`` against X, beside a chance baseline: the corpus' most frequent
token at every position (for the bag-of-words model, the most frequent tokens as the bag).

    python benchmarks/bench_reconstruction.py [--n-texts 300] [--max-epochs 40]
"""

import argparse
import platform
import time
from collections import Counter

import torch

import _results
from sktextae import TextAutoencoder
from sktextae.datasets import load_stdlib_docstrings
from sktextae.metrics import bag_token_accuracy, reconstruction_report, token_accuracy
from sktextae.tokenization import encode

# The configuration the learning test (tests/test_learning.py) uses.
CONFIG = dict(latent_dim=64, embedding_dim=64, hidden_dim=128, num_layers=1, num_heads=4, dropout=0.0,
              noise=0.0, batch_size=16, lr=3e-3, validation_fraction=0, patience=None, random_state=0)


def short_sentences(n_texts):
    texts = load_stdlib_docstrings().data
    return [t for t in texts if 3 <= len(t.split()) <= 8][:n_texts]


def chance(ae, texts):
    refs, _ = encode(ae.tokenizer_, texts, max_length=ae.max_length_)
    counts = Counter(int(t) for r in refs for t in r)
    if ae.architecture == "bow":
        top = [t for t, _ in counts.most_common(ae.bag_size_)]
        return bag_token_accuracy(refs, [top] * len(refs))
    majority = counts.most_common(1)[0][0]
    return token_accuracy(refs, [[majority] * len(r) for r in refs])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-texts", type=int, default=300)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--architectures", default="transformer,gru,lstm,bow")
    args = parser.parse_args()
    texts = short_sentences(args.n_texts)
    rows = []
    for architecture in args.architectures.split(","):
        ae = TextAutoencoder(architecture=architecture, max_epochs=args.max_epochs, **CONFIG)
        start = time.perf_counter()
        ae.fit(texts)
        fit_seconds = time.perf_counter() - start
        report = reconstruction_report(ae, texts)
        rows.append(_results.stamp({
            "benchmark": "reconstruction", "method": f"sktextae-{architecture}", "n_texts": len(texts),
            "max_epochs": args.max_epochs, "token_accuracy": report["token_accuracy"],
            "chance_token_accuracy": chance(ae, texts), "exact_match": report["exact_match"],
            "fit_seconds": round(fit_seconds, 1), "device": f"cpu ({torch.get_num_threads()} threads, "
                                                            f"{platform.machine()})"}))
    _results.write("reconstruction", rows, ["method", "n_texts", "max_epochs", "token_accuracy",
                                            "chance_token_accuracy", "exact_match", "fit_seconds", "device"],
                   title="Reconstruction of training texts, against chance")


if __name__ == "__main__":
    main()
