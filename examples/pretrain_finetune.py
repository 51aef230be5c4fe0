"""Pretrain a text autoencoder without labels, adapt it to a domain, then fine-tune a classifier on few labels.
============================================================================================================

The workflow for when texts are plenty and labels are scarce, on the first paragraphs of the standard
library's docstrings (no download: they are read from this Python's own installation), labelled by
module. The task: tell apart the docstrings of the 8 largest modules, with 10% of their training
texts labelled.

1. Pretrain a ``TextAutoencoder`` on every docstring except the test texts, without labels.
2. Domain adaptation: ``partial_fit`` a few more epochs (one epoch per call) on the unlabelled
   training texts of the 8 modules only. The tokenizer stays the one learnt in step 1.
3. Fine-tune a ``TextAutoencoderClassifier(pretrained=ae)``: it starts from a copy of the adapted
   network and tokenizer (``ae`` itself is left unchanged) and trains a classification head on the
   10% labelled texts, jointly with the reconstruction of all training texts (the others are
   labelled -1, unlabelled).
4. Compare its test accuracy with the same classifier trained from scratch for the same number of
   epochs on the same labels, with a logistic regression on the frozen latent vectors of the
   adapted autoencoder, and, as a non-neural reference, with TF-IDF + logistic regression.

Run it with::

    python examples/pretrain_finetune.py

It takes a few minutes at most on 2 CPU cores. On a machine busy with other work, run it as
``OMP_NUM_THREADS=1 python examples/pretrain_finetune.py``: PyTorch's threads then stop competing for
the cores. The corpus depends on the
Python version, so the numbers change a little between interpreters.
"""

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktextae import TextAutoencoder, TextAutoencoderClassifier
from sktextae.datasets import load_stdlib_docstrings

N_MODULES = 8
LABELLED_FRACTION = 0.1
# architecture="bow": its decoder predicts the bag of tokens of a text, so the latent vector must say
# which words a text holds, much of what tells a module's docstrings apart; and it trains in
# seconds on a CPU. noise=0.3 deletes 30% of each text's tokens on the encoder's side (denoising),
# which makes the latent vectors of related texts closer. The classifier fine-tuned from the
# autoencoder takes the network's sizes from it; the one trained from scratch takes them from here.
PARAMS = dict(latent_dim=64, architecture="bow", embedding_dim=64, hidden_dim=256, num_layers=1, vocab_size=2000,
              max_length=96, noise=0.3, batch_size=64, lr=3e-3, validation_fraction=0, patience=None,
              random_state=0)
PRETRAIN_EPOCHS, ADAPT_EPOCHS, FINETUNE_EPOCHS = 20, 5, 20


def main():
    start = time.perf_counter()
    corpus = load_stdlib_docstrings(max_words=25)
    texts, modules = np.array(corpus.data, dtype=object), np.array(corpus.target_names, dtype=object)[corpus.target]
    names, counts = np.unique(modules, return_counts=True)
    chosen = names[np.argsort(-counts, kind="stable")[:N_MODULES]]
    in_domain = np.isin(modules, chosen)

    # The test texts are never seen, not even without labels; every other docstring is.
    train_index, test_index = train_test_split(np.flatnonzero(in_domain), test_size=0.3, stratify=modules[in_domain],
                                               random_state=0)
    X_train, y_train = texts[train_index].tolist(), modules[train_index]
    X_test, y_test = texts[test_index].tolist(), modules[test_index]
    pretrain_texts = texts[np.setdiff1d(np.arange(len(texts)), test_index)].tolist()
    labelled, _ = train_test_split(np.arange(len(X_train)), train_size=LABELLED_FRACTION, stratify=y_train,
                                   random_state=0)
    y_partial = np.full(len(X_train), -1, dtype=object)  # -1: unlabelled
    y_partial[labelled] = y_train[labelled]
    print(f"{len(texts)} docstrings of {len(names)} modules, read in {time.perf_counter() - start:.0f} s. "
          f"Task: {N_MODULES} modules ({', '.join(sorted(chosen))}),\n{len(X_train)} training texts of which "
          f"{len(labelled)} labelled ({LABELLED_FRACTION:.0%}), {len(X_test)} test texts.\n")

    rows = []

    # 1. Pretraining: every text but the test texts, no labels.
    start = time.perf_counter()
    ae = TextAutoencoder(**PARAMS, max_epochs=PRETRAIN_EPOCHS).fit(pretrain_texts)
    pretrain_seconds = time.perf_counter() - start
    print(f"1. pretrained on {len(pretrain_texts)} texts for {PRETRAIN_EPOCHS} epochs in {pretrain_seconds:.0f} s "
          f"(train loss {ae.net_.history[-1, 'train_loss']:.2f})")

    # 2. Domain adaptation: more epochs on the task's own (unlabelled) texts; one epoch per call.
    start = time.perf_counter()
    for _ in range(ADAPT_EPOCHS):
        ae.partial_fit(X_train)
    adapt_seconds = time.perf_counter() - start
    print(f"2. adapted to the {len(X_train)} training texts for {ADAPT_EPOCHS} epochs in {adapt_seconds:.0f} s "
          f"(train loss {ae.net_.history[-1, 'train_loss']:.2f}; held-out mean log-likelihood per token "
          f"{ae.score(X_test):.2f})")

    # 3. Fine-tuning on the labels; the texts labelled -1 still train the encoder through reconstruction.
    latents_before = ae.transform(X_test)
    start = time.perf_counter()
    finetuned = TextAutoencoderClassifier(**PARAMS, max_epochs=FINETUNE_EPOCHS, pretrained=ae).fit(X_train, y_partial)
    finetune_seconds = time.perf_counter() - start
    print(f"3. fine-tuned for {FINETUNE_EPOCHS} epochs in {finetune_seconds:.0f} s "
          f"({finetuned.n_labelled_} labelled texts)\n")
    rows.append(("pretrained + adapted + fine-tuned classifier", finetuned.score(X_test, y_test),
                 f"{pretrain_seconds + adapt_seconds + finetune_seconds:.0f} s ({finetune_seconds:.0f} s fine-tuning)"))

    # 4. Baselines, on the same labels.
    start = time.perf_counter()
    scratch = TextAutoencoderClassifier(**PARAMS, max_epochs=FINETUNE_EPOCHS).fit(X_train, y_partial)
    rows.append((f"classifier from scratch ({FINETUNE_EPOCHS} epochs)", scratch.score(X_test, y_test),
                 f"{time.perf_counter() - start:.0f} s"))

    start = time.perf_counter()
    X_labelled = [X_train[i] for i in labelled]
    frozen = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    frozen.fit(ae.transform(X_labelled), y_train[labelled])
    rows.append(("logistic regression on frozen latents", frozen.score(ae.transform(X_test), y_test),
                 f"{time.perf_counter() - start:.1f} s (+ pretraining)"))

    start = time.perf_counter()
    tfidf = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
    tfidf.fit(X_labelled, y_train[labelled])
    rows.append(("TF-IDF + logistic regression (reference)", tfidf.score(X_test, y_test),
                 f"{time.perf_counter() - start:.1f} s"))

    chance = np.max(np.unique(y_test, return_counts=True)[1]) / len(y_test)
    width = max(len(row[0]) for row in rows)
    print(f"Test accuracy with {len(labelled)} labels ({N_MODULES} classes, majority class {chance:.3f}):\n")
    print(f"| {'method':<{width}} | accuracy | time")
    print(f"|{'-' * (width + 2)}|----------|------")
    for method, accuracy, seconds in rows:
        print(f"| {method:<{width}} |    {accuracy:.3f} | {seconds}")

    # Fine-tuning worked on copies: the adapted autoencoder encodes exactly as it did before step 3.
    unchanged = np.array_equal(ae.transform(X_test), latents_before)
    print(f"\nThe pretrained autoencoder is {'unchanged' if unchanged else 'CHANGED'} by fine-tuning; the classifier "
          f"kept its vocabulary of {ae.tokenizer_.get_vocab_size()} tokens.")


if __name__ == "__main__":
    main()
