"""The demo job: train on the standard library's docstrings, then show what the latent space gives.

Run it as ``sktextae demo`` or ``python -m sktextae demo``. It needs no download: the corpus is read
from this Python's own installation (see ``sktextae.datasets.load_stdlib_docstrings``).
"""

import functools
import math
import os
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import normalize
from skorch.callbacks import PrintLog

from .callbacks import SyncFreeProgressBar
from .datasets import load_stdlib_docstrings
from .estimator import TextAutoencoder
from .metrics import reconstruction_report

HELD_OUT = 0.2  # the share of the texts held out to measure what the model learned


def run_demo(*, architecture="gru", latent_dim=64, max_epochs=15, max_texts=3000, random_state=0, out=print):
    """Train a small autoencoder on stdlib docstrings and report what it learned through ``out``.

    The losses of each epoch go through ``out`` too, coloured only when ``out`` is ``print`` and standard
    output a terminal; a progress bar goes to standard error only when it is a terminal."""
    corpus = load_stdlib_docstrings(max_texts=max_texts, random_state=random_state)
    n_modules = len(corpus.target_names)
    if math.ceil(HELD_OUT * len(corpus.data)) < n_modules:  # train_test_split's count, stratified
        raise ValueError(f"max_texts={max_texts} gives {len(corpus.data)} texts, too few to hold out one text of each "
                         f"of the {n_modules} modules; use max_texts >= {math.ceil(n_modules / HELD_OUT)}.")
    train_texts, test_texts, y_train, y_test = train_test_split(
        corpus.data, corpus.target, test_size=HELD_OUT, stratify=corpus.target, random_state=random_state)
    out(f"Corpus: {len(corpus.data)} first paragraphs of standard-library docstrings from "
        f"{len(corpus.target_names)} modules ({len(train_texts)} to train, {len(test_texts)} held out).")
    # Sizes that train in a few minutes on 2 CPU cores; the GRU learns fastest there.
    ae = TextAutoencoder(latent_dim, architecture=architecture, embedding_dim=128, hidden_dim=256,
                         num_layers=1 if architecture in ("gru", "lstm") else 2, num_heads=4, max_length=128,
                         max_epochs=max_epochs, batch_size=32, lr="auto", vocab_size=8000,
                         noise=0.0, patience=None, random_state=random_state)
    out(f"\nTraining {ae!r} ...")
    ae.set_params(callbacks=training_display(out))
    start = time.perf_counter()
    Z_train = ae.fit_transform(train_texts)
    fit_seconds = time.perf_counter() - start
    out(f"Trained in {fit_seconds:.0f} s on {ae.device_}.")

    Z_test = ae.transform(test_texts)
    out("\nHeld-out texts and their reconstructions, inverse_transform(transform(text)):")
    for text, rebuilt in zip(test_texts[:5], ae.inverse_transform(Z_test[:5])):
        out(f"  text:    {text}\n  rebuilt: {rebuilt}\n")
    reports = {}
    for name, texts in (("training", train_texts), ("held-out", test_texts)):
        reports[name] = report = reconstruction_report(ae, texts)
        out(f"Reconstruction of {name} texts: token accuracy {report['token_accuracy']:.1%}, "
            f"exact match {report['exact_match']:.1%}.")
    out(MEASURES_NOTE[ae.net_.module_.is_sequence_decoder])

    out("\nNearest training texts in latent space (cosine):")
    train_unit, test_unit = normalize(Z_train), normalize(Z_test)
    for i in range(3):
        out(f"  query [{corpus.target_names[y_test[i]]}]: {test_texts[i]}")
        for j in np.argsort(-(train_unit @ test_unit[i]))[:3]:
            out(f"    [{corpus.target_names[y_train[j]]}] {train_texts[j]}")

    probe = LogisticRegression(max_iter=2000).fit(Z_train, y_train)
    accuracy = probe.score(Z_test, y_test)
    majority = np.bincount(y_train).argmax()
    out(f"\nLogisticRegression on the {latent_dim}-d latent vectors, predicting the module of each held-out "
        f"text: accuracy {accuracy:.1%} (chance, always the largest module: {np.mean(y_test == majority):.1%}; "
        f"{len(corpus.target_names)} modules).")
    return {"probe_accuracy": accuracy, "chance_accuracy": float(np.mean(y_test == majority)),
            "fit_seconds": fit_seconds, "train_token_accuracy": reports["training"]["token_accuracy"],
            "train_exact_match": reports["training"]["exact_match"],
            "test_token_accuracy": reports["held-out"]["token_accuracy"], "device": ae.device_}


# What metrics.reconstruction_report measures, by whether the decoder writes sequences (or a bag of words).
MEASURES_NOTE = {
    True: "(Token accuracy: the share of all tokens rebuilt at their own position, so long texts weigh more; "
          "exact match: the share of texts rebuilt whole, each counting once, so short texts rebuilt exactly "
          "can lift it above token accuracy.)",
    False: "(Token accuracy: the share of all tokens found in the rebuilt bag of words, whatever their order, so "
           "long texts weigh more; exact match: the share of texts rebuilt whole, which a bag, without word "
           "order, seldom is.)",
}


# ---------------------------------------------------------------------------------------- the display

def training_display(out):
    """The callbacks that show training: skorch's table of the losses of each epoch, through ``out``, in
    colour only on a terminal (and NO_COLOR unset), and a progress bar, only when standard error is a
    terminal: redirected to a file, either would write escape codes and carriage returns into it."""
    colour = out is print and is_terminal(sys.stdout) and not os.environ.get("NO_COLOR")
    callbacks = [("epoch_table", EpochTable(out=out, colour=colour))]
    if is_terminal(sys.stderr):
        callbacks.append(("progress_bar", SyncFreeProgressBar()))
    return callbacks


def is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream (None under pythonw), or a closed one
        return False


class EpochTable(PrintLog):
    """skorch's table of the losses of each epoch, written through ``out`` whatever the net's ``verbose``;
    skorch's colours (on a value that is the best so far) only with ``colour``."""

    def __init__(self, *, out=print, colour=False):
        # Not ``print`` itself: skorch's PrintLog writes to print only when the net is verbose.
        super().__init__(sink=functools.partial(out))
        self.out, self.colour = out, colour

    def format_row(self, row, key, color):
        if not self.colour:
            row = {**row, f"{key}_best": False}  # a best value is the one skorch colours
        return super().format_row(row, key, color)
