"""Reading the shared labelled datasets (``text,label`` CSVs) for benchmarks and slow tests."""

import os
import pathlib

import numpy as np

DEFAULT_DATA = pathlib.Path(os.environ.get("SKTEXTAE_DATA", pathlib.Path(__file__).parents[1] / ".." / "shared" / "data"))


def load_split(data_dir, dataset, split, *, max_texts=None, random_state=0):
    """Texts and labels of ``<data_dir>/<dataset>/<split>.csv``, optionally a stratified subsample."""
    import pandas as pd  # a benchmark-only dependency

    frame = pd.read_csv(pathlib.Path(data_dir) / dataset / f"{split}.csv", keep_default_na=False)
    texts, labels = frame["text"].astype(str).tolist(), frame["label"].to_numpy()
    if max_texts is not None and max_texts < len(texts):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(texts)), train_size=max_texts, stratify=labels,
                                   random_state=random_state)
        keep = np.sort(keep)
        texts, labels = [texts[i] for i in keep], labels[keep]
    return texts, labels


# The fixed samples the benchmarks read where a dataset is too large to use whole on a CPU: SST-2's
# training phrases and 20 Newsgroups' posts (the others are used whole).
SAMPLE_SIZES = {("sst2", "train"): 10000, ("20newsgroups", "train"): 3000, ("20newsgroups", "test"): 1000}


def load_sample(data_dir, dataset, split, *, random_state=0):
    """``load_split`` with the benchmarks' fixed sample size for the dataset and split (``SAMPLE_SIZES``)."""
    return load_split(data_dir, dataset, split, max_texts=SAMPLE_SIZES.get((dataset, split)),
                      random_state=random_state)


def unlabelled_corpus(data_dir, *, exclude, max_texts, min_words=4, max_words=40, random_state=0):
    """Up to ``max_texts`` short unlabelled texts from the training splits of the shared datasets other than
    ``exclude``: SST-2's phrases, and the sentences of 20 Newsgroups' posts and AG News' texts, each of
    ``min_words`` to ``max_words`` words, deduplicated, shuffled, the same for a given ``random_state``."""
    import re

    texts = []
    for dataset in ("sst2", "20newsgroups", "ag_news"):
        if dataset == exclude or not (pathlib.Path(data_dir) / dataset / "train.csv").exists():
            continue
        for text in load_split(data_dir, dataset, "train")[0]:
            pieces = [text] if dataset == "sst2" else re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
            texts += [p for p in pieces if min_words <= len(p.split()) <= max_words]
    texts = sorted(set(texts))
    order = np.random.default_rng(random_state).permutation(len(texts))
    return [texts[i] for i in order[:max_texts]]
