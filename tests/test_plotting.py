"""sktextae.plotting: what the history and latent-map plots draw, their input checks, and that matplotlib
stays an optional dependency."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import LABELS, TEXTS, TINY_PARAMS, tiny_autoencoder
from sklearn.exceptions import NotFittedError

from sktextae import TextAutoencoderClassifier, TextAutoencoderRegressor

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sktextae.plotting import plot_history, plot_latent_map  # noqa: E402

EPOCHS = 3


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model():
    """Fitted on every text: no validation split."""
    return tiny_autoencoder(max_epochs=EPOCHS, validation_fraction=0).fit(list(TEXTS))


@pytest.fixture(scope="module")
def validated_model():
    return tiny_autoencoder(max_epochs=EPOCHS, validation_fraction=0.2).fit(list(TEXTS))


@pytest.fixture(scope="module")
def variational_model():
    return tiny_autoencoder(max_epochs=EPOCHS, validation_fraction=0.2, variational=True).fit(list(TEXTS))


def n_points(ax):
    return sum(len(collection.get_offsets()) for collection in ax.collections)


def line_lengths(ax):
    return {line.get_label(): len(line.get_xdata()) for line in ax.get_lines()}


# ------------------------------------------------------------------------------------------- plot_history

def test_history_without_validation_draws_the_training_loss_alone(model):
    axes = plot_history(model)
    assert len(axes) == 1
    assert line_lengths(axes[0]) == {"train": EPOCHS}
    train = axes[0].get_lines()[0]
    assert list(train.get_xdata()) == [1, 2, 3]
    np.testing.assert_allclose(train.get_ydata(), model.net_.history[:, "train_loss"])


def test_history_with_validation_draws_both_losses(validated_model):
    axes = plot_history(validated_model)
    assert len(axes) == 1
    assert line_lengths(axes[0]) == {"train": EPOCHS, "validation": EPOCHS}
    valid = dict((line.get_label(), line) for line in axes[0].get_lines())["validation"]
    np.testing.assert_allclose(valid.get_ydata(), validated_model.net_.history[:, "valid_loss"])
    assert [text.get_text() for text in axes[0].get_legend().get_texts()] == ["train", "validation"]


def test_variational_history_adds_a_panel_of_kl_and_active_units(variational_model):
    history = variational_model.net_.history
    loss_ax, kl_ax, units_ax = plot_history(variational_model)
    assert line_lengths(loss_ax) == {"train": EPOCHS, "validation": EPOCHS}
    assert line_lengths(kl_ax) == {"train KL": EPOCHS, "validation KL": EPOCHS}
    assert line_lengths(units_ax) == {"active units": EPOCHS}
    np.testing.assert_allclose(kl_ax.get_lines()[0].get_ydata(), history[:, "train_kl"])
    np.testing.assert_allclose(units_ax.get_lines()[0].get_ydata(), history[:, "active_units"])
    # The active units share the KL panel's epochs (a twin axis), and the panel has one legend for both.
    assert units_ax.get_shared_x_axes().joined(units_ax, kl_ax)
    assert [text.get_text() for text in kl_ax.get_legend().get_texts()] == ["train KL", "validation KL",
                                                                          "active units"]


def test_history_draws_on_the_axes_given(model, variational_model):
    _, ax = plt.subplots()
    assert plot_history(model, ax=ax)[0] is ax
    _, pair = plt.subplots(1, 2)
    axes = plot_history(variational_model, ax=pair)
    assert axes[0] is pair[0] and axes[1] is pair[1]
    with pytest.raises(ValueError, match="holds 1 Axes.*two Axes"):
        plot_history(variational_model, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="holds 2 Axes.*one Axes"):
        plot_history(model, ax=pair)


def test_history_of_supervised_models():
    params = {**TINY_PARAMS, "max_epochs": 2}
    classifier = TextAutoencoderClassifier(**params).fit(list(TEXTS), list(LABELS))
    regressor = TextAutoencoderRegressor(**params).fit(list(TEXTS), np.array(LABELS, dtype=float))
    for fitted in (classifier, regressor):
        (ax,) = plot_history(fitted)
        assert line_lengths(ax) == {"train": 2}
        assert type(fitted).__name__ in ax.get_title()
    assert n_points(plot_latent_map(classifier, TEXTS, LABELS)) == len(TEXTS)


def test_history_refuses_an_unfitted_model_an_empty_history_and_other_objects(model, tmp_path):
    with pytest.raises(NotFittedError):
        plot_history(tiny_autoencoder())
    with pytest.raises(NotFittedError):
        plot_history(TextAutoencoderClassifier())
    model.save(tmp_path / "model")
    loaded = type(model).load(tmp_path / "model")
    with pytest.raises(ValueError, match="history is empty.*load"):
        plot_history(loaded)
    with pytest.raises(TypeError, match="got PCA"):
        from sklearn.decomposition import PCA

        plot_history(PCA())


# ---------------------------------------------------------------------------------------- plot_latent_map

def test_latent_map_draws_one_point_per_text_and_one_group_per_label(model):
    ax = plot_latent_map(model, TEXTS, LABELS, annotate=0)
    assert n_points(ax) == len(TEXTS)
    assert len(ax.collections) == len(set(LABELS))
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["0", "1"]
    # Each group holds the texts of its label (the first 20 are cooking, label 0), at their coordinates.
    everything = plot_latent_map(model, TEXTS, annotate=0, ax=plt.subplots()[1]).collections[0].get_offsets()
    np.testing.assert_allclose(ax.collections[0].get_offsets(), everything[:20])
    np.testing.assert_allclose(ax.collections[1].get_offsets(), everything[20:])
    assert len(ax.texts) == 0
    assert "PC 1" in ax.get_xlabel()


def test_latent_map_places_points_at_the_pca_of_transform(model):
    from sklearn.decomposition import PCA

    ax = plot_latent_map(model, TEXTS, annotate=0)
    assert ax.get_legend() is None and len(ax.collections) == 1
    expected = PCA(2).fit_transform(model.transform(TEXTS).astype(np.float64))
    np.testing.assert_allclose(np.abs(ax.collections[0].get_offsets()), np.abs(expected), rtol=1e-5, atol=1e-6)


def test_latent_map_string_labels_and_missing_ones(model):
    labels = ["cooking"] * 10 + ["computing"] * 10 + [None] * 5 + [float("nan")] * 15
    ax = plot_latent_map(model, TEXTS, labels, annotate=0)
    assert n_points(ax) == len(TEXTS)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert sorted(legend) == ["None", "computing", "cooking"]  # None and NaN: one group of missing labels
    assert sorted(len(collection.get_offsets()) for collection in ax.collections) == [10, 10, 20]


def test_annotations_are_a_few_shortened_texts_chosen_by_random_state(model):
    long_texts = list(TEXTS)
    long_texts[0] = "word " * 30
    ax = plot_latent_map(model, long_texts, annotate=3, random_state=0)
    written = [text.get_text() for text in ax.texts]
    assert len(written) == 3
    assert all(len(text) <= 40 for text in written)
    shortened = {" ".join(text.split())[:39].rstrip() + "…" if len(text) > 40 else text for text in long_texts}
    assert set(written) <= shortened
    again = plot_latent_map(model, long_texts, annotate=3, random_state=0, ax=plt.subplots()[1])
    assert [text.get_text() for text in again.texts] == written
    every = plot_latent_map(model, TEXTS[:4], annotate=10, random_state=0, ax=plt.subplots()[1])
    assert len(every.texts) == 4


def test_latent_map_with_tsne(model):
    ax = plot_latent_map(model, TEXTS, LABELS, method="tsne", annotate=2, random_state=0)
    assert n_points(ax) == len(TEXTS)
    assert len(ax.get_legend().get_texts()) == 2 and len(ax.texts) == 2
    assert ax.get_xlabel() == "t-SNE 1"
    # Fewer texts than the default perplexity (30): the perplexity follows the number of texts.
    few = plot_latent_map(model, TEXTS[:5], method="tsne", random_state=0, ax=plt.subplots()[1])
    assert n_points(few) == 5
    first = ax.collections[0].get_offsets()
    again = plot_latent_map(model, TEXTS, LABELS, method="tsne", annotate=2, random_state=0, ax=plt.subplots()[1])
    np.testing.assert_allclose(again.collections[0].get_offsets(), first)


def test_latent_map_draws_on_the_axes_given(model):
    _, ax = plt.subplots()
    assert plot_latent_map(model, TEXTS, ax=ax) is ax


def test_latent_map_refuses_bad_input(model):
    with pytest.raises(ValueError, match=r"method='umap' is not one of 'pca', 'tsne'"):
        plot_latent_map(model, TEXTS, method="umap")
    with pytest.raises(ValueError, match=r"labels holds 39 labels but texts holds 40 texts"):
        plot_latent_map(model, TEXTS, LABELS[:-1])
    with pytest.raises(ValueError, match="1-D"):
        plot_latent_map(model, TEXTS, np.zeros((40, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        plot_latent_map(model, TEXTS[:1])
    with pytest.raises(TypeError, match="string object received"):
        plot_latent_map(model, "one text")
    for annotate in (-1, 2.5, True):
        with pytest.raises(ValueError, match="annotate must be a non-negative integer"):
            plot_latent_map(model, TEXTS, annotate=annotate)
    with pytest.raises(NotFittedError):
        plot_latent_map(tiny_autoencoder(), TEXTS)


# --------------------------------------------------------------------------------- the optional dependency

def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_sktextae_does_not_import_matplotlib():
    result = run_python("import sktextae, sys; sktextae.TextAutoencoder; print('matplotlib' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_matplotlib_the_functions_name_the_extra():
    # sys.modules[name] = None makes `import name` raise ImportError, as if it were not installed.
    result = run_python(
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import sktextae.plotting as plotting\n"
        "try:\n"
        "    plotting.plot_history(None)\n"
        "except ImportError as error:\n"
        "    print(error)\n")
    assert result.returncode == 0, result.stderr
    assert 'pip install "sktextae[plot]"' in result.stdout
