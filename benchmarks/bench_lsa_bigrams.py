"""LSA with the bigrams of words beside the words: how much the linear probe gains at each size, and at
what weight of the bigrams, on the four datasets (what the bag of words' ``bigrams`` count was chosen on).

For each dataset, in one process on one CPU thread, the texts of ``bench_default_lsa`` (TREC whole,
SST-2's fixed 10,000-phrase training sample, 20 Newsgroups 3,000/1,000 posts, AG News a stratified
``--ag-news-train`` sample and its whole test split) and for each ``--latent-dims``:

- ``words``: ``TfidfVectorizer(sublinear_tf=True, min_df=2)`` + ``TruncatedSVD`` (the LSA of every other
  benchmark here), whose words are two letters or digits or more (its default ``token_pattern``);
- ``words + bigrams xW [top K]``: scikit-learn's word counts (``min_df=2``) beside its bigram counts
  (``CountVectorizer(ngram_range=(2, 2), min_df=2)``, the ``K`` most frequent where given), sublinear TF-IDF
  over both, the bigrams' columns multiplied by ``W``, rows L2-normalised, then ``TruncatedSVD``;
- ``... 1-char``: the same where a single letter or digit is a word too (``token_pattern=r"(?u)\b\\w+\b"``).

Each row: the linear probe's test accuracy and KMeans NMI (``bench_objectives.probe_and_cluster``).

    python benchmarks/bench_lsa_bigrams.py [--data ../shared/data] [--datasets trec,ag_news,sst2,20newsgroups]
        [--latent-dims 64,256] [--output lsa_bigrams_cpu]
"""

import argparse

import _data
import _results
import numpy as np
import scipy.sparse
from bench_default_lsa import load, scores
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

COLUMNS = ["dataset", "latent_dim", "method", "n_bigrams", "accuracy", "nmi", "nmi_std"]
TWO_CHARS, ONE_CHAR = r"(?u)\b\w\w+\b", r"(?u)\b\w+\b"
# (name, bigram weight, the most frequent bigrams kept or None for all, token_pattern); weight 0: the words alone.
VARIANTS = [("words", 0.0, None, TWO_CHARS), ("words + bigrams x1", 1.0, None, TWO_CHARS),
            ("words + bigrams x0.5", 0.5, None, TWO_CHARS), ("words + bigrams x0.5 top 32000", 0.5, 32000, TWO_CHARS),
            ("words + bigrams x0.5 top 16000", 0.5, 16000, TWO_CHARS), ("words 1-char", 0.0, None, ONE_CHAR),
            ("words + bigrams x0.5 1-char", 0.5, None, ONE_CHAR)]


def vectors(train, test, weight, top, token_pattern):
    """Sublinear TF-IDF over the words and (with a weight) their bigrams, the bigrams' columns scaled."""
    matrices = [CountVectorizer(min_df=2, token_pattern=token_pattern).fit(train)]
    if weight:
        matrices.append(CountVectorizer(ngram_range=(2, 2), min_df=2, max_features=top,
                                        token_pattern=token_pattern).fit(train))
    counts = [scipy.sparse.hstack([m.transform(texts) for m in matrices]).tocsr() for texts in (train, test)]
    scale = np.ones(counts[0].shape[1])
    scale[len(matrices[0].vocabulary_):] = weight
    tfidf = TfidfTransformer(sublinear_tf=True, norm=None).fit(counts[0])
    n_bigrams = counts[0].shape[1] - len(matrices[0].vocabulary_)
    return [normalize(tfidf.transform(c) @ scipy.sparse.diags(scale)) for c in counts], n_bigrams


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,ag_news,sst2,20newsgroups")
    parser.add_argument("--latent-dims", default="64,256")
    parser.add_argument("--ag-news-train", type=int, default=5000)
    parser.add_argument("--output", default="lsa_bigrams_cpu")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets.split(","):
        train, y_train = load(args.data, dataset, "train", args.ag_news_train)
        test, y_test = load(args.data, dataset, "test", args.ag_news_train)
        for name, weight, top, token_pattern in VARIANTS:
            (X_train, X_test), n_bigrams = vectors(train, test, weight, top, token_pattern)
            for latent_dim in (int(d) for d in args.latent_dims.split(",")):
                svd = TruncatedSVD(latent_dim, random_state=0).fit(X_train)
                row = {"dataset": dataset, "latent_dim": latent_dim, "method": name, "n_bigrams": n_bigrams,
                       **scores(svd.transform(X_train), y_train, svd.transform(X_test), y_test)}
                rows.append(_results.stamp({"benchmark": "lsa_bigrams", "device": "cpu", **row}))
                print(row, flush=True)
                _results.write(args.output, rows, COLUMNS, quiet=True, title="LSA with the bigrams of words")
    print((_results.RESULTS / f"{args.output}.md").read_text())


if __name__ == "__main__":
    main()
