"""Plots of a fitted model: its training history, and a 2-D map of its latent space.

matplotlib is an optional dependency (``pip install "sktextae[plot]"``), imported inside the functions
that draw: ``import sktextae`` and ``import sktextae.plotting`` work without it.
"""

from numbers import Integral

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .base import _BaseTextAutoencoder
from .validation import check_texts

__all__ = ["plot_history", "plot_latent_map"]

METHODS = ("pca", "tsne")
ANNOTATION_LENGTH = 40  # characters of a text written beside its point
LEGEND_INSIDE = 10  # up to this many labels, the legend sits inside the map; more go in columns to its right
LEGEND_ROWS = 20  # entries per column of a legend beside the map
# More labels than tab20 has colours: each block of 20 labels gets the next marker, so that no two labels
# look alike (a sequential colour map would give neighbouring labels near-identical colours).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MAX_PERPLEXITY = 30.0  # scikit-learn's default for t-SNE; fewer texts get n_texts - 1


def plot_history(model, ax=None):
    """Plot the training and validation loss of a fitted model per epoch, from ``model.net_.history``.

    The validation loss is drawn when the fit held texts out (``validation_fraction > 0``). A
    variational model gets a second panel: its KL term per epoch (training and validation, in nats per
    text) and, on a twin y-axis of the same panel, its active units (latent units whose posterior mean
    varies across texts). The twin axis keeps the two signs of posterior collapse, a KL near 0 and few
    active units, side by side epoch by epoch, while each keeps its own scale.

    Parameters
    ----------
    model : TextAutoencoder, TextAutoencoderClassifier or TextAutoencoderRegressor
        A fitted model. A model read back with ``load`` has no history (``save`` does not write it).
    ax : matplotlib Axes, sequence of two Axes, or None, default=None
        Where to draw: one Axes for a model that is not variational, two (the loss panel and the KL
        panel) for a variational one. None draws on a new figure with the panels side by side.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        Always an array, whatever the model: ``[loss]``, or for a variational model
        ``[loss, kl, active_units]``, where ``active_units`` is the twin of ``kl`` (same x-axis, own
        y-axis on the right).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The model is not fitted.
    ValueError
        The history is empty, or ``ax`` does not hold one Axes per panel.

    Examples
    --------
    >>> from sktextae import TextAutoencoder
    >>> from sktextae.plotting import plot_history
    >>> texts = ["the cat sat on the mat", "a dog ran in the park", "the bird sang in a tree"] * 10
    >>> model = TextAutoencoder(8, max_epochs=3, validation_fraction=0.2).fit(texts)  # doctest: +SKIP
    >>> axes = plot_history(model)  # doctest: +SKIP
    >>> axes[0].figure.savefig("history.png")  # doctest: +SKIP
    """
    plt, ticker = _matplotlib("plot_history")
    _check_model(model)
    history = model.net_.history
    if len(history) == 0:
        raise ValueError("model.net_.history is empty: there is nothing to plot. A model read back with load() "
                         "keeps no history (save() does not write it); plot the model that was fitted.")
    variational = any("train_kl" in row for row in history)
    n_panels = 2 if variational else 1
    if ax is None:
        _, panels = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 4), squeeze=False, layout="constrained")
        panels = list(panels.ravel())
    else:
        panels = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(panels) != n_panels:
            need = ("two Axes (the loss panel and the KL panel), e.g. plt.subplots(1, 2)[1]" if variational
                    else "one Axes")
            raise ValueError(f"ax holds {len(panels)} Axes, but this {'variational ' if variational else ''}model's "
                             f"history is drawn on {need}.")

    loss_ax = panels[0]
    _plot_column(loss_ax, history, "train_loss", label="train", color="C0")
    _plot_column(loss_ax, history, "valid_loss", label="validation", color="C1")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=f"{type(model).__name__}: loss per epoch")
    loss_ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    loss_ax.legend()
    if not variational:
        return np.array([loss_ax], dtype=object)

    kl_ax = panels[1]
    units_ax = kl_ax.twinx()
    _plot_column(kl_ax, history, "train_kl", label="train KL", color="C0")
    _plot_column(kl_ax, history, "valid_kl", label="validation KL", color="C1")
    _plot_column(units_ax, history, "active_units", label="active units", color="C2", linestyle="--")
    kl_ax.set(xlabel="epoch", ylabel="KL (nats per text)", title="KL term and active units")
    kl_ax.set_ylim(bottom=0)
    kl_ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    units_ax.set_ylabel("active units")
    units_ax.set_ylim(bottom=0)
    units_ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    # One legend for both y-axes.
    handles = kl_ax.get_legend_handles_labels()[0] + units_ax.get_legend_handles_labels()[0]
    kl_ax.legend(handles=handles)
    return np.array([loss_ax, kl_ax, units_ax], dtype=object)


def plot_latent_map(model, texts, labels=None, *, method="pca", annotate=5, random_state=None, ax=None):
    """Plot the latent vectors of texts (``model.transform(texts)``) projected to two dimensions.

    Parameters
    ----------
    model : TextAutoencoder, TextAutoencoderClassifier or TextAutoencoderRegressor
        A fitted model.
    texts : iterable of str
        The texts to place on the map, at least 2.
    labels : array-like of shape (n_texts,) or None, default=None
        A label per text (any hashable values: ints, strings, ...). Each distinct label gets its own
        colour (beyond 20 labels, its own colour and marker) and a legend entry; missing values (None,
        NaN) form one group, shown as ``None``. Beyond 10 labels the legend stands to the right of the
        map, in columns of 20, so that it hides no point.
    method : {"pca", "tsne"}, default="pca"
        ``"pca"``: scikit-learn's ``PCA``, a linear projection whose axes keep their meaning (the share
        of the variance each explains is in the axis label). ``"tsne"``: scikit-learn's ``TSNE``
        (perplexity 30, or ``n_texts - 1`` for fewer than 31 texts), which keeps neighbourhoods rather
        than distances.
    annotate : int, default=5
        How many texts to write beside their points, chosen at random (see ``random_state``) and cut to
        40 characters. 0 writes none.
    random_state : int, RandomState instance or None, default=None
        Chooses the annotated texts, and seeds t-SNE. An int gives the same plot on every call.
    ax : matplotlib Axes or None, default=None
        Where to draw; None draws on a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The model is not fitted.
    ValueError
        An unknown ``method``, labels that are not one per text, fewer than 2 texts, or a model whose
        ``latent_dim`` is 1.

    Examples
    --------
    >>> from sktextae import TextAutoencoder
    >>> from sktextae.plotting import plot_latent_map
    >>> texts = ["the cat sat on the mat", "a dog ran in the park", "the bird sang in a tree"] * 10
    >>> labels = ["cat", "dog", "bird"] * 10
    >>> model = TextAutoencoder(8, max_epochs=3).fit(texts)  # doctest: +SKIP
    >>> ax = plot_latent_map(model, texts, labels, method="tsne", annotate=3, random_state=0)  # doctest: +SKIP
    >>> ax.figure.savefig("latent_map.png")  # doctest: +SKIP
    """
    plt, _ = _matplotlib("plot_latent_map")
    _check_model(model)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(map(repr, METHODS))}.")
    if not isinstance(annotate, Integral) or isinstance(annotate, bool) or annotate < 0:
        raise ValueError(f"annotate must be a non-negative integer (how many texts to write on the map), "
                         f"got {annotate!r}.")
    texts = check_texts(texts, name="texts")
    n_texts = len(texts)
    if labels is not None:
        labels = _check_labels(labels, n_texts)
    if n_texts < 2:
        raise ValueError(f"texts holds {n_texts} text; a 2-D map needs at least 2.")
    latent = np.asarray(model.transform(texts), dtype=np.float64)  # (n_texts, latent_dim)
    if latent.shape[1] < 2:
        raise ValueError(f"The model's latent vectors have {latent.shape[1]} dimension (latent_dim="
                         f"{latent.shape[1]}); a 2-D map needs latent_dim >= 2.")
    rng = check_random_state(random_state)
    if method == "pca":
        pca = PCA(n_components=2, random_state=rng)
        points = pca.fit_transform(latent)  # (n_texts, 2)
        ratios = pca.explained_variance_ratio_
        axis_labels = [f"PC {i + 1} ({ratio:.0%} of the variance)" for i, ratio in enumerate(ratios)]
        name = "PCA"
    else:
        # scikit-learn's t-SNE needs a perplexity below the number of points.
        tsne = TSNE(n_components=2, perplexity=min(MAX_PERPLEXITY, n_texts - 1), init="pca", random_state=rng)
        points = tsne.fit_transform(latent)  # (n_texts, 2)
        axis_labels = ["t-SNE 1", "t-SNE 2"]
        name = "t-SNE"

    groups = _groups(labels) if labels is not None else []
    legend_columns = -(-len(groups) // LEGEND_ROWS)  # ceil
    if ax is None:
        beside = legend_columns if len(groups) > LEGEND_INSIDE else 0
        _, ax = plt.subplots(figsize=(7 + 1.6 * beside, 6), layout="constrained")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=14, alpha=0.8)
    else:
        for group, (color, marker) in zip(groups, _styles(len(groups))):
            mask = np.fromiter((label == group for label in labels), dtype=bool, count=n_texts)
            ax.scatter(points[mask, 0], points[mask, 1], s=14, alpha=0.8, color=color, marker=marker,
                       label=str(group))
        if len(groups) <= LEGEND_INSIDE:
            ax.legend(title="label", fontsize="small")
        else:  # inside, a long legend would hide points and the texts written beside them
            ax.legend(title="label", fontsize="small", ncols=legend_columns, loc="upper left",
                      bbox_to_anchor=(1.02, 1), borderaxespad=0)
    for i in np.sort(rng.choice(n_texts, size=min(annotate, n_texts), replace=False)):
        ax.annotate(_shorten(texts[i]), points[i], xytext=(4, 4), textcoords="offset points", fontsize="x-small")
    ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1],
           title=f"{n_texts} texts in the {latent.shape[1]}-d latent space ({name})")
    return ax


def _matplotlib(function):
    """pyplot and ticker, or an ImportError that says how to install them."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as error:
        raise ImportError(f'{function} needs matplotlib, an optional dependency of sktextae: '
                          f'pip install "sktextae[plot]"') from error
    return plt, ticker


def _check_model(model):
    if not isinstance(model, _BaseTextAutoencoder):
        raise TypeError(f"model must be a fitted TextAutoencoder, TextAutoencoderClassifier or "
                        f"TextAutoencoderRegressor, got {type(model).__name__}.")
    check_is_fitted(model)


def _plot_column(ax, history, key, **style):
    """Draw ``key`` against the epoch, over the epochs that recorded it; nothing if none did."""
    rows = [row for row in history if row.get(key) is not None]
    if rows:
        ax.plot([row["epoch"] for row in rows], [float(row[key]) for row in rows], marker="o", markersize=3,
                **style)


def _check_labels(labels, n_texts):
    """``labels`` as a list of Python values, one per text; NaN becomes None (one group of missing values)."""
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels must be an array-like of one label per text, got a str.")
    array = np.asarray(labels, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per text), got an array of shape {array.shape}.")
    if len(array) != n_texts:
        raise ValueError(f"labels holds {len(array)} labels but texts holds {n_texts} texts: give one label per "
                         f"text.")
    values = [value.item() if isinstance(value, np.generic) else value for value in array]
    return [None if isinstance(value, float) and value != value else value for value in values]


def _groups(labels):
    """The distinct labels, sorted when they compare, else in order of first appearance."""
    groups = list(dict.fromkeys(labels))
    try:
        return sorted(groups)
    except TypeError:  # mixed types (None with ints, ints with strings)
        return groups


def _styles(n):
    """``n`` distinct (colour, marker) pairs: tab10's colours, or tab20's, as circles; beyond 20, tab20's
    colours again with the next marker for each block of 20 (then a sequential colour map beyond
    ``20 * len(MARKERS)``, where no style would tell the labels apart anyway)."""
    from matplotlib import colormaps

    if n <= 10:
        return [(color, "o") for color in colormaps["tab10"].colors[:n]]
    if n <= 20 * len(MARKERS):
        palette = colormaps["tab20"].colors
        return [(palette[i % 20], MARKERS[i // 20]) for i in range(n)]
    return [(color, "o") for color in colormaps["turbo"].resampled(n)(np.arange(n))]


def _shorten(text):
    """A text on one line, cut to ``ANNOTATION_LENGTH`` characters with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= ANNOTATION_LENGTH:
        return text
    return text[:ANNOTATION_LENGTH - 1].rstrip() + "…"
