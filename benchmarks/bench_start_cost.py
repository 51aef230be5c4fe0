"""Where the bag of words' LSA start parts from scikit-learn's LSA: one change at a time, no training.

On a stratified sample of a dataset's training texts (as ``bench_width_grid.py`` takes it), each row is an
LSA of one latent size (``TruncatedSVD`` at ``random_state`` 0, 1 and 2), scored by the linear probe and
KMeans NMI of ``bench_objectives.probe_and_cluster`` on the whole test split (or a stratified sample of
``--n-test`` texts: 20 Newsgroups' 1,000 posts of the eight cases). From scikit-learn's LSA to the
start of the package's default, one thing changes per row:

- ``sklearn``: ``TfidfVectorizer(sublinear_tf=True)`` + ``TruncatedSVD``, the baseline of the grid;
  ``sklearn, min_df=2`` (beside it, no step of the chain) leaves out the words that one training text
  alone holds, as the LSA of ``bench_default_lsa.py``'s eight cases does;
- ``words, unknown dropped``: the same TF-IDF over the words the default's encoder counts (its tokenizer,
  trained on the sample as ``fit`` trains it, each token as its term, ``Vocabulary.bag_terms``), a test
  text's words that no training text holds left out, as ``TfidfVectorizer`` leaves them out;
- ``words, unknown counted``: those words counted as the encoder counts them, at the IDF of a word no
  training text holds, with no vector of their own (they shorten what the text's known words add up to);
- ``start, all texts``: the encoder itself (``nn.BagOfWordsEncoder``, the bigrams it counts too) started by
  ``lsa_start.start_from_lsa`` from every text of the sample, its projection as the vectors;
- ``start, training split``: started, as ``fit`` starts it, from the texts it trains on, without the tenth
  it holds out for early stopping (a different tenth for each seed).

Its width is the latent size (``embedding_dim`` = ``latent_dim``, as the grid's square sizes have it).
``start_from_lsa`` fixes its SVD's ``random_state`` at 0; here each seed sets it.

    python benchmarks/bench_start_cost.py [--data ../shared/data] [--dataset ag_news] [--n-train 1200]
        [--n-test N] [--latents 16,32] [--seeds 0,1,2] [--output start_cost_cpu_ag_news]
"""

import argparse
import itertools
from unittest import mock

import _data
import _results
import numpy as np
import torch
from bench_small_widths import scores, token_statistics
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

import sktextae.lsa_start
from sktextae.batching import Collator
from sktextae.fitting import n_validation
from sktextae.network import BAG_OF_WORDS_TEXT
from sktextae.nn.bow import BagOfWordsEncoder
from sktextae.tokenization import PAD_ID, UNK_ID, encode, train_tokenizer
from sktextae.vocabulary import Vocabulary

COLUMNS = ["method", "latent_dim", "seed", "probe", "nmi"]
SUMMARY = ["method", "latent_dim", "probe (seed mean)", "nmi (seed mean)"]
METHODS = ("sklearn", "sklearn, min_df=2", "words, unknown dropped", "words, unknown counted", "start, all texts",
           "start, training split")


def svd_seed(seed):
    """``start_from_lsa``'s SVD at ``random_state=seed``, for the length of a with-block."""
    return mock.patch.object(sktextae.lsa_start, "TruncatedSVD",
                             lambda n_components, random_state=None: TruncatedSVD(n_components, random_state=seed))


def projections(encoder, sequences, batch_size=256):
    """The encoder's projection of each sequence of ids, read as ``fit`` reads it (the EOS after it)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(sequences), batch_size):
            inputs, _ = Collator(sequence_targets=False)(sequences[i:i + batch_size])
            out.append(encoder(inputs["input_ids"], inputs["lengths"])[:, encoder.projection].numpy())
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--latents", default="16,32")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output")
    args = parser.parse_args()
    output = args.output or f"start_cost_cpu_{args.dataset}"
    torch.set_num_threads(1)
    train, y_train = _data.load_split(args.data, args.dataset, "train", max_texts=args.n_train)
    test, y_test = _data.load_split(args.data, args.dataset, "test", max_texts=args.n_test)
    latents, seeds = [int(n) for n in args.latents.split(",")], [int(n) for n in args.seeds.split(",")]
    base = {"benchmark": "start_cost", "dataset": args.dataset, "n_train": len(train), "n_test": len(test),
            "device": _results.device_name("cpu")}

    X_sklearn = {}
    for min_df in (1, 2):
        tfidf = TfidfVectorizer(sublinear_tf=True, min_df=min_df).fit(train)
        X_sklearn[min_df] = tfidf.transform(train), tfidf.transform(test)
    tokenizer = train_tokenizer(train, kind=BAG_OF_WORDS_TEXT["tokenizer"], vocab_size=BAG_OF_WORDS_TEXT["vocab_size"],
                                lowercase=BAG_OF_WORDS_TEXT["lowercase"], max_length=BAG_OF_WORDS_TEXT["max_length"])
    size = tokenizer.get_vocab_size()
    terms = Vocabulary(tokenizer).bag_terms(min_word_chars=2)  # what the default's encoder counts
    max_length = BAG_OF_WORDS_TEXT["max_length"]
    train_ids, test_ids = ([np.asarray(s) for s in encode(tokenizer, texts, max_length=max_length)[0]]
                           for texts in (train, test))

    def words(sequences, *, unknown):
        counted = terms.copy()
        if not unknown:
            counted[UNK_ID] = PAD_ID
        return [counted[s][counted[s] != PAD_ID] for s in sequences]

    held = np.zeros(size, bool)
    held[np.concatenate(words(train_ids, unknown=False))] = True
    X_words = {}
    for unknown in (False, True):
        X_train, idf = token_statistics(words(train_ids, unknown=unknown), size)
        # Dropped: a test text's words that no training text holds are left out, as TfidfVectorizer leaves them.
        test_words = [s if unknown else s[held[s]] for s in words(test_ids, unknown=unknown)]
        X_words[unknown] = X_train, token_statistics(test_words, size, idf=idf)[0]

    n_valid = n_validation(0.1, len(train))
    rows = []

    def add(method, latent_dim, seed, train_vectors, test_vectors):
        rows.append(_results.stamp({**base, "method": method, "latent_dim": latent_dim, "seed": seed,
                                    **scores(train_vectors, y_train, test_vectors, y_test)}))
        print(method, latent_dim, seed, rows[-1]["probe"], flush=True)

    for latent_dim, seed in itertools.product(latents, seeds):
        for method, (X_train, X_test) in [("sklearn", X_sklearn[1]), ("sklearn, min_df=2", X_sklearn[2]),
                                          ("words, unknown dropped", X_words[False]),
                                          ("words, unknown counted", X_words[True])]:
            fitted = TruncatedSVD(latent_dim, random_state=seed).fit(X_train)
            add(method, latent_dim, seed, fitted.transform(X_train), fitted.transform(X_test))
        training = np.sort(np.random.default_rng(seed).permutation(len(train))[n_valid:])
        for method, texts in [("start, all texts", train_ids),
                              ("start, training split", [train_ids[i] for i in training])]:
            torch.manual_seed(seed)
            encoder = BagOfWordsEncoder(vocab_size=size, embedding_dim=latent_dim, hidden_dim=latent_dim, num_layers=1,
                                        dropout=0.0, terms=terms, bigrams=size, unknown=UNK_ID).eval()
            with svd_seed(seed):
                sktextae.lsa_start.start_from_lsa(encoder, texts)
            add(method, latent_dim, seed, projections(encoder, train_ids), projections(encoder, test_ids))

    summary = []
    for method, latent_dim in itertools.product(METHODS, latents):
        mine = [r for r in rows if r["method"] == method and r["latent_dim"] == latent_dim]
        summary.append(_results.stamp({**base, "method": method, "latent_dim": latent_dim,
                                       "probe (seed mean)": round(float(np.mean([r["probe"] for r in mine])), 4),
                                       "nmi (seed mean)": round(float(np.mean([r["nmi"] for r in mine])), 4)}))
    title = (f"The LSA start beside scikit-learn's LSA on {args.dataset}: {len(train)} training texts, "
             f"{len(test)} test texts")
    _results.write(output, rows, COLUMNS, title=title, quiet=True)
    _results.write(f"{output}_summary", summary, SUMMARY, title=f"{title}, seed means")


if __name__ == "__main__":
    main()
