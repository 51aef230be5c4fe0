"""The demo job: train on the standard library's docstrings, then show what the latent space gives.

Run it as ``sktextae demo`` or ``python -m sktextae demo``. It needs no download: the corpus is read
from this Python's own installation (see ``sktextae.datasets.load_stdlib_docstrings``).
"""

import functools
import math
import os
import pathlib
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
from .files import atomic_file
from .metrics import reconstruction_report

HELD_OUT = 0.2  # the share of the texts held out to measure what the model learned


def run_demo(*, architecture="gru", latent_dim=64, max_epochs=15, max_texts=3000, random_state=0, plots=None,
             overwrite_plots=False, out=print):
    """Train a small autoencoder on stdlib docstrings and report what it learned through ``out``.

    The losses of each epoch go through ``out`` too, coloured only when ``out`` is ``print`` and standard
    output a terminal; a progress bar goes to standard error only when it is a terminal.

    With ``plots`` (a folder, created if missing), the demo also writes ``history.png`` and
    ``latent_map.png`` there (see ``write_plots``). The folder is checked, and matplotlib imported, before
    anything is trained: see ``prepare_plot_folder`` for what is refused."""
    if plots is not None:
        plots = prepare_plot_folder(plots, overwrite=overwrite_plots)
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
    if plots is not None:
        labels = [corpus.target_names[label] for label in y_test]
        history, latent_map = write_plots(ae, test_texts, labels, plots, random_state=random_state)
        out(f"\nPlots:\n  {history}  (the training and validation loss per epoch)\n"
            f"  {latent_map}  (the held-out texts' latent vectors by PCA, coloured by module)")
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


# ---------------------------------------------------------------------------------------- the plots

PLOT_FILES = ("history.png", "latent_map.png")
# Written into each PNG (its "Software" text chunk): a file that carries it is one the demo wrote, which a
# later demo replaces without --overwrite-plots.
PLOT_MARK = "sktextae demo"
PLOT_DPI = 120
ANNOTATED_TEXTS = 6  # held-out texts written beside their points on the latent map


def prepare_plot_folder(folder, *, overwrite=False):
    """Check, before any training, that the plots can be written into ``folder``, then create it (and its
    parents) if missing; return it as a ``pathlib.Path``.

    Raises ``ImportError`` (with the ``pip install`` line) without matplotlib, and ``ValueError``, with
    nothing written, when ``folder`` is a file (never replaced, whatever ``overwrite``), cannot be created,
    or holds a ``history.png`` or ``latent_map.png`` that the demo did not write (replaced only with
    ``overwrite``) or that is a folder, a symbolic link or a device (never replaced)."""
    _agg()
    folder = pathlib.Path(folder)
    if str(folder) == "":
        raise ValueError("--plots needs a folder name, got ''.")
    if folder.is_symlink() and not folder.exists():
        raise ValueError(f"--plots {folder} is a symbolic link to nothing: pass an existing folder or a new name.")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--plots {folder} is a file, not a folder: pass a folder (created if missing) to write "
                         f"{' and '.join(PLOT_FILES)} in.")
    if folder.is_dir():
        _check_plot_files(folder, overwrite=overwrite)
    else:
        _check_creatable(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--plots {folder}: cannot create the folder ({_reason(error)}).") from None
    return folder


def _check_plot_files(folder, *, overwrite):
    foreign = []
    for name in PLOT_FILES:
        path = folder / name
        if path.is_symlink():
            raise ValueError(f"--plots: {path} is a symbolic link: it is never replaced. Remove it, or pass another "
                             f"--plots folder.")
        if path.exists() and not path.is_file():
            raise ValueError(f"--plots: {path} is not a regular file (a folder or a device): it is never replaced. "
                             f"Pass another --plots folder.")
        if path.exists() and not overwrite and not _written_by_demo(path):
            foreign.append(str(path))
    if foreign:
        verb = "exists" if len(foreign) == 1 else "exist"
        raise ValueError(f"--plots: {' and '.join(foreign)} {verb} and {'was' if len(foreign) == 1 else 'were'} not "
                         f"written by sktextae demo: pass --overwrite-plots to replace "
                         f"{'it' if len(foreign) == 1 else 'them'}, or another --plots folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--plots {folder}: no permission to write in this folder.")


def _check_creatable(folder):
    """Refuse a missing ``folder`` whose nearest existing ancestor is a file or a folder we cannot write in."""
    ancestor = pathlib.Path(os.path.abspath(folder)).parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--plots {folder}: cannot create the folder: {ancestor} is a file.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"--plots {folder}: cannot create the folder: no permission to write in {ancestor}.")


def _written_by_demo(path):
    """Whether ``path`` is a PNG whose "Software" text chunk is ``PLOT_MARK``, read with Pillow (which
    matplotlib, and so ``--plots``, requires)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.text.get("Software") == PLOT_MARK
    except (OSError, SyntaxError, ValueError):  # not an image, or a damaged one
        return False


def write_plots(model, texts, labels, folder, *, random_state):
    """Write ``history.png`` (``plot_history(model)``) and ``latent_map.png`` (``plot_latent_map`` of
    ``texts`` coloured by ``labels``, a few annotated, chosen by ``random_state``) into ``folder``; return
    their paths.

    Each figure is a ``matplotlib.figure.Figure`` drawn by the Agg canvas and saved with
    ``files.atomic_file``: pyplot and its global backend are left as they were, no figure stays open in
    pyplot's list, and an interrupted demo leaves no half-written PNG."""
    from .plotting import plot_history, plot_latent_map

    figure_class, canvas_class = _agg()
    n_panels = 2 if model.variational else 1  # a variational model's KL term gets a second panel
    history = figure_class(figsize=(6.5 * n_panels, 4.5), layout="constrained")
    plot_history(model, ax=history.subplots(1, n_panels, squeeze=False))
    latent_map = figure_class(figsize=(12, 7), layout="constrained")  # the legend of 60 modules on the right
    ax = plot_latent_map(model, texts, labels, method="pca", annotate=ANNOTATED_TEXTS, random_state=random_state,
                         ax=latent_map.subplots())
    if ax.get_legend() is not None:  # labels given
        ax.get_legend().set_title("module")
    paths = []
    for name, figure in zip(PLOT_FILES, (history, latent_map)):
        path = pathlib.Path(folder) / name
        canvas_class(figure)
        try:
            with atomic_file(path) as handle:
                figure.savefig(handle, format="png", dpi=PLOT_DPI, metadata={"Software": PLOT_MARK})
        except OSError as error:  # a full disk, a folder removed while the demo trained
            raise ValueError(f"--plots: cannot write {path} ({_reason(error)}).") from None
        paths.append(path)
    return paths


def _agg():
    """matplotlib's ``Figure`` and Agg canvas, or an ImportError that says how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('--plots needs matplotlib, an optional dependency of sktextae: '
                          'pip install "sktextae[plot]"', name="matplotlib") from error
    return Figure, FigureCanvasAgg


def _reason(error):
    return error.strerror or str(error) or type(error).__name__


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
