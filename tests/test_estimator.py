"""scikit-learn contract tests of ``TextAutoencoder``.

scikit-learn's common checks skip estimators that take raw text (``input_tags.string``), so this file
runs the checks that need no data directly, and writes the data-dependent ones out with texts: clone,
get/set_params, pickle, Pipeline, GridSearchCV, set_output, feature names, NotFittedError, bad input.
Every model is tiny (see ``conftest.tiny_autoencoder``) so that the file runs in seconds on a CPU.
"""

import collections
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sktextae._sklearn_private import InvalidParameterError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EpochTimer

from conftest import DATA_FREE_CHECKS, TEXTS, tiny_autoencoder
import sktextae.estimator
from sktextae import TextAutoencoder, TextAutoencoderClassifier, TruncationWarning
from sktextae.nn import ARCHITECTURES, ENCODERS, SCRATCH_DECODERS
import sktextae.network
import sktextae.training
from sktextae.tokenization import decode, encode

NEW_DOMAIN = [
    "Quasars emit enormous amounts of radiation from distant galaxies.",
    "The orchestra rehearsed Mahler's ninth symphony until midnight.",
    "Zebras and wildebeest crossed the Mara river in July.",
]


class EpochCounter(Callback):
    """A user callback with state, to see whether fit trains with it and whether it mutates it."""

    def initialize(self):
        self.epochs_seen_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_seen_ += 1


@pytest.fixture(scope="module", params=ARCHITECTURES)
def fitted(request, tiny, corpus):
    """A fitted tiny model of each architecture; tests must not change it."""
    return tiny(architecture=request.param).fit(list(corpus))


@pytest.fixture(scope="module")
def fitted_gru(tiny, corpus):
    """A fitted GRU model with a snapshot of its state, to show that failed calls leave it as it was."""
    estimator = tiny().fit(list(corpus))
    return estimator, _snapshot(estimator, corpus)


def _snapshot(estimator, texts):
    return estimator.tokenizer_, estimator.net_, estimator.get_params(), estimator.transform(texts)


def assert_unchanged(estimator, snapshot, texts):
    tokenizer, net, params, Z = snapshot
    assert estimator.tokenizer_ is tokenizer
    assert estimator.net_ is net
    assert estimator.get_params() == params
    np.testing.assert_array_equal(estimator.transform(texts), Z)


# --------------------------------------------------------------------------- scikit-learn's own checks



@pytest.mark.parametrize("config", ["default", "tiny"])
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda check: check.__name__)
def test_sklearn_data_free_check(check, config, tiny):
    estimator = TextAutoencoder() if config == "default" else tiny(callbacks=[EpochTimer()])
    check(type(estimator).__name__, estimator)


def test_param_validation_comes_before_input_validation():
    with pytest.raises(InvalidParameterError, match="'latent_dim' parameter"):
        TextAutoencoder(latent_dim=0).fit("not a list of texts")


def test_tags():
    # What the package changes of scikit-learn's defaults: raw texts in, float32 out whatever the input.
    tags = TextAutoencoder().__sklearn_tags__()
    assert tags.input_tags.string is True
    assert tags.input_tags.two_d_array is False
    assert tags.transformer_tags.preserves_dtype == []


# --------------------------------------------------------------------------- clone, params, callbacks

def test_clone_unfitted_has_equal_params(tiny):
    estimator = tiny(architecture="lstm", latent_dim=5, lr=3e-3)
    cloned = clone(estimator)
    assert cloned is not estimator
    assert cloned.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)


def test_clone_fitted_gives_unfitted(fitted):
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not [name for name in vars(cloned) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        cloned.transform(["some text"])


def test_fit_returns_self_and_sets_only_trailing_underscore_attributes(tiny, texts):
    estimator = tiny()
    before = dict(vars(estimator))
    assert estimator.fit(texts) is estimator
    added = set(vars(estimator)) - set(before)
    assert added, "fit set no attributes"
    assert all(name.endswith("_") and not name.startswith("_") for name in added), sorted(added)
    assert added == {"tokenizer_", "vocabulary_", "net_", *TextAutoencoder._fitted_attributes}
    check_is_fitted(estimator)


def test_fit_does_not_change_params(tiny, texts):
    estimator = tiny(callbacks=[EpochCounter()])
    params = estimator.get_params()
    hashes = {name: joblib.hash(value) for name, value in params.items()}
    estimator.fit(texts)
    assert {name: joblib.hash(value) for name, value in estimator.get_params().items()} == hashes
    assert all(estimator.get_params()[name] is value for name, value in params.items())


def test_callbacks_survive_clone_and_are_copied_in_fit(tiny, texts):
    counter, timer = EpochCounter(), EpochTimer()
    estimator = tiny(callbacks=[counter, timer], max_epochs=3)
    timer_state = dict(vars(timer))

    cloned = clone(estimator)
    assert [type(callback) for callback in cloned.callbacks] == [EpochCounter, EpochTimer]
    cloned.fit(texts)
    estimator.fit(texts)

    assert estimator.callbacks == [counter, timer]
    assert vars(counter) == {} and vars(timer) == timer_state  # the user's objects: never initialized
    trained_counters = [callback for _, callback in estimator.net_.callbacks_ if isinstance(callback, EpochCounter)]
    assert [callback.epochs_seen_ for callback in trained_counters] == [3]  # a copy trained
    assert trained_counters[0] is not counter


def test_set_params_then_fit_uses_new_params(tiny, texts):
    estimator = tiny().fit(texts)
    estimator.set_params(latent_dim=3, architecture="bow")
    assert estimator.fit(texts).transform(texts).shape == (len(texts), 3)
    assert estimator.net_.module_.is_sequence_decoder is False


# --------------------------------------------------------------------------- pickle, reproducibility

def test_pickle_round_trip_gives_identical_outputs(fitted, texts, tmp_path):
    Z = fitted.transform(texts)
    decoded = fitted.inverse_transform(Z[:4])
    joblib.dump(fitted, tmp_path / "model.joblib")
    for restored in (pickle.loads(pickle.dumps(fitted)), joblib.load(tmp_path / "model.joblib")):
        assert type(restored) is TextAutoencoder
        assert restored.get_params() == fitted.get_params()
        np.testing.assert_array_equal(restored.transform(texts), Z)
        np.testing.assert_array_equal(restored.inverse_transform(Z[:4]), decoded)
        assert restored.score(texts) == fitted.score(texts)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_same_random_state_gives_identical_fits(architecture, tiny, texts):
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = tiny(architecture=architecture).fit(texts).transform(texts)
    # The global random states are neither used nor changed by fit.
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))

    torch.manual_seed(12345)  # a different global state must not matter
    second = tiny(architecture=architecture).fit(texts).transform(texts)
    np.testing.assert_array_equal(first, second)

    other_seed = tiny(architecture=architecture, random_state=1).fit(texts).transform(texts)
    assert not np.array_equal(first, other_seed)


def test_same_random_state_gives_identical_fits_with_validation_and_partial_fit(tiny, texts):
    def fit_twice():
        estimator = tiny(validation_fraction=0.25, patience=2).fit(texts)
        return estimator.partial_fit(NEW_DOMAIN).transform(texts)

    np.testing.assert_array_equal(fit_twice(), fit_twice())


def test_fit_transform_equals_fit_then_transform(tiny, texts):
    np.testing.assert_array_equal(tiny().fit_transform(texts), tiny().fit(texts).transform(texts))


# --------------------------------------------------------------------------- composition

def test_pipeline_with_classifier(tiny, texts, labels):
    pipeline = Pipeline([("ae", tiny()), ("clf", LogisticRegression())])
    pipeline.fit(texts, labels)
    predictions = pipeline.predict(texts)
    assert predictions.shape == (len(texts),)
    assert set(predictions) <= {0, 1}
    assert pipeline.predict_proba(texts).shape == (len(texts), 2)
    assert 0 <= pipeline.score(texts, labels) <= 1
    assert pipeline[:-1].get_feature_names_out().tolist() == [f"textautoencoder{i}" for i in range(8)]


def test_grid_search_with_default_score(tiny, texts):
    grid = {"latent_dim": [4, 8], "architecture": ["gru", "bow"]}
    search = GridSearchCV(tiny(), grid, cv=2, error_score="raise").fit(texts)
    assert np.isfinite(search.best_score_)
    assert search.best_score_ <= 0  # a mean log-likelihood
    assert search.best_params_["latent_dim"] in grid["latent_dim"]
    assert search.best_params_["architecture"] in grid["architecture"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.transform(texts).shape == (len(texts), search.best_params_["latent_dim"])


def test_kmeans_on_latents(tiny, texts):
    latents = tiny().fit_transform(texts)
    assert KMeans(n_clusters=2, n_init=1, random_state=0).fit(latents).labels_.shape == (len(texts),)
    clusters = make_pipeline(tiny(), KMeans(n_clusters=2, n_init=1, random_state=0)).fit_predict(texts)
    assert set(clusters) <= {0, 1}


# --------------------------------------------------------------------------- set_output, feature names

def test_set_output_pandas(tiny, texts):
    expected_columns = [f"textautoencoder{i}" for i in range(8)]
    estimator = tiny().set_output(transform="pandas")
    frame = estimator.fit_transform(texts)
    assert isinstance(frame, pd.DataFrame)
    assert frame.columns.tolist() == expected_columns
    assert estimator.get_feature_names_out().tolist() == expected_columns
    np.testing.assert_array_equal(frame.to_numpy(), tiny().fit(texts).transform(texts))

    index = [f"doc{i}" for i in range(5)]
    from_series = estimator.transform(pd.Series(texts[:5], index=index))
    assert from_series.index.tolist() == index
    assert from_series.dtypes.eq(np.float32).all()


def test_feature_names_follow_latent_dim(tiny, texts):
    estimator = tiny(latent_dim=3)
    with pytest.raises(NotFittedError):
        estimator.get_feature_names_out()
    estimator.fit(texts)
    names = estimator.get_feature_names_out()
    assert isinstance(names, np.ndarray)
    assert names.tolist() == ["textautoencoder0", "textautoencoder1", "textautoencoder2"]


# --------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("method, argument", [
    ("transform", ["a text"]),
    ("inverse_transform", np.zeros((1, 8))),
    ("score", ["a text"]),
    ("score_samples", ["a text"]),
    ("get_feature_names_out", None),
])
def test_not_fitted_error(method, argument, tiny):
    with pytest.raises(NotFittedError):
        getattr(tiny(), method)(*([] if argument is None else [argument]))


def test_outputs(fitted, texts):
    Z = fitted.transform(texts)
    assert isinstance(Z, np.ndarray)
    assert Z.dtype == np.float32
    assert Z.shape == (len(texts), 8)
    assert np.isfinite(Z).all()

    decoded = fitted.inverse_transform(Z[:5])
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == object
    assert decoded.shape == (5,)
    assert all(isinstance(text, str) for text in decoded)
    assert fitted.inverse_transform(Z[:5].astype(np.float64)).tolist() == decoded.tolist()
    assert fitted.inverse_transform(Z[:5].tolist()).tolist() == decoded.tolist()

    score = fitted.score(texts)
    assert isinstance(score, float)
    assert np.isfinite(score) and score <= 0

    scores = fitted.score_samples(texts)
    assert scores.shape == (len(texts),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores <= 0).all()


def test_outputs_do_not_depend_on_batching_or_order(fitted, texts):
    Z, scores = fitted.transform(texts), fitted.score_samples(texts)
    np.testing.assert_allclose(fitted.transform(texts[:7]), Z[:7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.transform(texts[::-1]), Z[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.score_samples(texts[::-1]), scores[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.transform([texts[3]]), Z[3:4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_inference_batch_size_changes_only_the_batching(architecture, tiny, texts, monkeypatch):
    estimator = tiny(architecture=architecture, variational=True, batch_size=16).fit(texts)
    module = estimator.net_.module_
    widths, decoded_rows = [], []  # the (B, T) of each batch encoded, the B of each batch decoded

    def encode(input_ids, lengths):
        widths.append(input_ids.shape)
        return type(module).encode(module, input_ids, lengths)

    # Decoding a batch starts with the decoder's initial state (sequence decoders) or its one decode (bag).
    first_call = "init_state" if module.is_sequence_decoder else "decode"

    def spy_first_call(latent, *args, **kwargs):
        decoded_rows.append(len(latent))
        return getattr(type(module), first_call)(module, latent, *args, **kwargs)

    monkeypatch.setattr(module, "encode", encode)
    monkeypatch.setattr(module, first_call, spy_first_call)
    outputs = {}
    for size in (1, 8, 256):
        widths.clear(), decoded_rows.clear()
        estimator.set_params(inference_batch_size=size)
        Z = estimator.transform(texts)
        # Batches of at most `size` texts (not of the training batch_size), from the shortest texts to the
        # longest, cut early only where padding would pass half of a batch.
        assert all(shape[0] <= size for shape in widths) and sum(shape[0] for shape in widths) == len(texts)
        assert [shape[1] for shape in widths] == sorted(shape[1] for shape in widths)
        if size == 8:
            assert max(shape[0] for shape in widths) == 8
        decoded_rows.clear()
        decoded = estimator.inverse_transform(Z[:10])
        assert decoded_rows == [min(size, 10 - start) for start in range(0, 10, size)]
        outputs[size] = dict(
            Z=Z, decoded=decoded, scores=estimator.score_samples(texts), score=estimator.score(texts),
            sampled=estimator.sample(3, random_state=0),
            interpolated=estimator.interpolate(texts[0], texts[1], n_steps=3))
        if architecture != "bow":
            outputs[size]["beam"] = estimator.inverse_transform(Z[:3], strategy="beam", beam_size=3)
    for size in (1, 8):
        np.testing.assert_allclose(outputs[size]["Z"], outputs[256]["Z"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[size]["scores"], outputs[256]["scores"], rtol=1e-5, atol=1e-6)
        assert outputs[size]["score"] == pytest.approx(outputs[256]["score"], rel=1e-6)
        for key in ("decoded", "sampled", "interpolated") + (("beam",) if architecture != "bow" else ()):
            assert outputs[size][key].tolist() == outputs[256][key].tolist(), key


def test_inverse_transform_stays_within_max_length(tiny, texts):
    estimator = tiny(tokenizer="char", max_length=12, architecture="gru")
    with pytest.warns(TruncationWarning):
        estimator.fit(texts)
    decoded = estimator.inverse_transform(np.random.default_rng(0).normal(size=(6, 8)) * 10)
    assert all(len(text) <= 12 for text in decoded)  # char tokens: one character each


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_empty_string_is_a_text(architecture, tiny, texts):
    estimator = tiny(architecture=architecture).fit(texts + [""])
    Z = estimator.transform(["", texts[0]])
    assert Z.shape == (2, 8) and np.isfinite(Z).all()
    assert estimator.inverse_transform(Z).shape == (2,)
    scores = estimator.score_samples(["", texts[0]])
    assert np.isfinite(scores).all() and (scores <= 0).all()
    if architecture == "bow":
        assert scores[0] == 0  # no tokens to score: documented as 0
    else:
        assert scores[0] < 0  # the end of the text is scored
    assert np.isfinite(estimator.score([""]))
    assert tiny(architecture=architecture).fit(["", "", ""]).transform([""]).shape == (1, 8)


# --------------------------------------------------------------------------- accepted inputs

INPUT_FORMS = {
    "list": list,
    "tuple": tuple,
    "array-str": np.array,
    "array-object": lambda texts: np.array(texts, dtype=object),
    "array-2d-one-column": lambda texts: np.array(texts)[:, None],
    "series": pd.Series,
    "series-string-dtype": lambda texts: pd.Series(texts, dtype="string"),
    "series-shuffled-index": lambda texts: pd.Series(texts, index=np.arange(len(texts))[::-1]),
    "dataframe-one-column": lambda texts: pd.DataFrame({"text": texts}),
    "generator": lambda texts: (text for text in texts),
}


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_input_forms_give_the_same_transform(form, fitted_gru, corpus):
    estimator, (_, _, _, Z) = fitted_gru
    np.testing.assert_array_equal(estimator.transform(INPUT_FORMS[form](list(corpus))), Z)
    assert estimator.score_samples(INPUT_FORMS[form](list(corpus))).shape == (len(corpus),)


@pytest.mark.parametrize("form", ["tuple", "array-object", "dataframe-one-column", "generator"])
def test_input_forms_give_the_same_fit(form, fitted_gru, tiny, corpus):
    _, (_, _, _, Z) = fitted_gru
    np.testing.assert_array_equal(tiny().fit(INPUT_FORMS[form](list(corpus))).transform(list(corpus)), Z)


# --------------------------------------------------------------------------- rejected inputs

BAD_TEXTS = [
    pytest.param(lambda: "a single text", TypeError, "Iterable over raw text documents expected", id="bare-str"),
    pytest.param(lambda: b"bytes", TypeError, "Iterable over raw text documents expected", id="bare-bytes"),
    pytest.param(lambda: ["one", "two", 3, "four"], TypeError, r"X\[2\] is of type int", id="int-element"),
    pytest.param(lambda: ["one", b"two"], TypeError, r"X\[1\] is of type bytes", id="bytes-element"),
    pytest.param(lambda: [["nested"], ["lists"]], TypeError, r"X\[0\] is of type list", id="nested-list"),
    pytest.param(lambda: 42, TypeError, "X must be an iterable of str.*got int", id="int"),
    pytest.param(lambda: ["one", None], ValueError, r"X\[1\] is None, a missing value", id="none"),
    pytest.param(lambda: ["one", "two", float("nan")], ValueError, r"X\[2\] is nan, a missing value", id="nan"),
    pytest.param(lambda: np.array(["one", np.nan], dtype=object), ValueError, "missing value", id="array-nan"),
    pytest.param(lambda: pd.Series(["one", None]), ValueError, r"X\[1\].*missing value", id="series-nan"),
    pytest.param(lambda: pd.Series(["one", None], dtype="string"), ValueError, r"X\[1\].*missing value",
                 id="series-pd-na"),
    pytest.param(lambda: [], ValueError, "X is empty", id="empty-list"),
    pytest.param(lambda: pd.Series([], dtype=str), ValueError, "X is empty", id="empty-series"),
    pytest.param(lambda: pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]}), ValueError,
                 "DataFrame with 2 columns", id="dataframe-two-columns"),
    pytest.param(lambda: np.array([["x", "y"], ["z", "w"]]), ValueError, r"1-D.*shape \(2, 2\)",
                 id="array-two-columns"),
]


@pytest.mark.parametrize("make_X, error, match", BAD_TEXTS)
@pytest.mark.parametrize("method", ["fit", "partial_fit", "fit_transform", "transform", "score", "score_samples"])
def test_bad_texts_raise_and_change_nothing(method, make_X, error, match, fitted_gru, corpus):
    estimator, snapshot = fitted_gru
    with pytest.raises(error, match=match):
        getattr(estimator, method)(make_X())
    assert_unchanged(estimator, snapshot, corpus)


@pytest.mark.parametrize("make_Z, match", [
    pytest.param(lambda: np.zeros((3, 5)), r"Z has 5 columns.*latent_dim is 8", id="wrong-width"),
    pytest.param(lambda: np.zeros(8), "Expected 2D array", id="1d"),
    pytest.param(lambda: np.full((2, 8), np.nan), "NaN", id="nan"),
    pytest.param(lambda: np.full((2, 8), np.inf), "infinity", id="inf"),
    pytest.param(lambda: np.zeros((0, 8)), "Z holds no latent vectors", id="no-rows"),
])
def test_bad_latents_raise_and_change_nothing(make_Z, match, fitted_gru, corpus):
    estimator, snapshot = fitted_gru
    with pytest.raises(ValueError, match=match):
        estimator.inverse_transform(make_Z())
    assert_unchanged(estimator, snapshot, corpus)


@pytest.mark.parametrize("params, error, match", [
    ({"latent_dim": 0}, InvalidParameterError, "'latent_dim' parameter"),
    ({"architecture": "cnn"}, InvalidParameterError, "'architecture' parameter"),
    ({"dropout": 1.5}, InvalidParameterError, "'dropout' parameter"),
    ({"tokenizer": "sentencepiece"}, InvalidParameterError, "'tokenizer' parameter"),
    ({"lowercase": "yes"}, InvalidParameterError, "'lowercase' parameter"),
    ({"validation_fraction": 1.0}, InvalidParameterError, "'validation_fraction' parameter"),
    ({"patience": 0}, InvalidParameterError, "'patience' parameter"),
    ({"inference_batch_size": 0}, InvalidParameterError, "'inference_batch_size' parameter"),
    ({"callbacks": EpochTimer()}, InvalidParameterError, "'callbacks' parameter"),
    ({"patience": 3, "validation_fraction": 0}, ValueError, r"patience=3.*validation_fraction=0"),
    ({"architecture": "transformer", "embedding_dim": 10, "num_heads": 4}, ValueError,
     r"embedding_dim\(10\) must be divisible by num_heads\(4\)"),
    ({"vocab_size": 100}, ValueError, r"vocab_size=100 is too small"),
    ({"device": "nonsense"}, ValueError, "device='nonsense' is not a torch device"),
])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_params_raise_and_change_nothing(method, params, error, match, fitted_gru, corpus):
    estimator, snapshot = fitted_gru
    with pytest.raises(error, match=match):
        getattr(clone(estimator).set_params(**params), method)(list(corpus))  # unfitted
    if method == "partial_fit" and params != {"patience": 3, "validation_fraction": 0}:
        # As in scikit-learn, partial_fit on a fitted model does not validate the parameters again,
        # and it keeps the tokenizer, device and network it has; it only checks the validation split.
        return
    good_params = estimator.get_params()
    estimator.set_params(**params)
    try:
        with pytest.raises(error, match=match):
            getattr(estimator, method)(list(corpus))
    finally:
        estimator.set_params(**good_params)
    assert_unchanged(estimator, snapshot, corpus)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_device_without_cuda_raises(tiny, texts):
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        tiny(device="cuda").fit(texts)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_validation_needs_two_texts(method, fitted_gru, corpus):
    estimator, snapshot = fitted_gru
    match = r"validation_fraction=0.5 needs at least 2 texts.*got 1"
    with pytest.raises(ValueError, match=match):
        getattr(clone(estimator).set_params(validation_fraction=0.5), method)(["only one text"])
    estimator.set_params(validation_fraction=0.5)
    try:
        with pytest.raises(ValueError, match=match):
            getattr(estimator, method)(["only one text"])
    finally:
        estimator.set_params(validation_fraction=0)
    assert_unchanged(estimator, snapshot, corpus)
    assert estimator.n_truncated_ == 0


# --------------------------------------------------------------------------- truncation

def test_truncation_warns_and_counts(tiny, texts):
    # Every sentence has more than 3 words, so more than 3 tokens; each short text has at most 2 bytes.
    short = ["Hi", "OK", ""]
    with pytest.warns(TruncationWarning, match=f"{len(texts)} of {len(texts) + 3} texts .* max_length=3"):
        estimator = tiny(max_length=3).fit(short + texts)
    assert estimator.n_truncated_ == len(texts)

    with pytest.warns(TruncationWarning, match="1 of 2 texts"):
        Z = estimator.transform(["Hi", texts[0]])
    assert Z.shape == (2, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        estimator.transform(short)


def test_truncation_count_is_exact(tiny, texts):
    # With tokenizer="char" a text has one token per character, so the count is known exactly.
    max_length = 50
    expected = sum(len(text) > max_length for text in texts)
    assert 0 < expected < len(texts)
    with pytest.warns(TruncationWarning, match=f"^{expected} of {len(texts)} texts"):
        estimator = tiny(tokenizer="char", max_length=max_length).fit(texts)
    assert estimator.n_truncated_ == expected

    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        assert tiny(tokenizer="char", max_length=100).fit(texts).n_truncated_ == 0
        estimator.partial_fit(["short"])
    assert estimator.n_truncated_ == 0


# --------------------------------------------------------------------------- partial_fit

def test_partial_fit_on_unfitted_fits_one_epoch(tiny, texts):
    estimator = tiny(max_epochs=5)
    assert estimator.partial_fit(texts) is estimator
    check_is_fitted(estimator)
    assert len(estimator.net_.history) == 1
    assert estimator.transform(texts).shape == (len(texts), 8)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_partial_fit_adds_one_epoch_and_keeps_tokenizer(architecture, tiny, texts):
    estimator = tiny(architecture=architecture).fit(texts)
    tokenizer, vocabulary = estimator.tokenizer_, estimator.tokenizer_.get_vocab()
    Z = estimator.transform(texts)

    assert estimator.partial_fit(NEW_DOMAIN) is estimator  # unseen words: no error
    assert len(estimator.net_.history) == 3
    assert [row["epoch"] for row in estimator.net_.history] == [1, 2, 3]
    assert estimator.tokenizer_ is tokenizer
    assert estimator.tokenizer_.get_vocab() == vocabulary
    assert not np.allclose(estimator.transform(texts), Z)
    assert np.isfinite(estimator.transform(NEW_DOMAIN)).all()

    estimator.partial_fit(texts)
    assert len(estimator.net_.history) == 4


def test_partial_fit_with_word_tokenizer_and_unknown_words(tiny, texts):
    estimator = tiny(tokenizer="word").fit(texts)
    vocabulary = estimator.tokenizer_.get_vocab()
    estimator.partial_fit(NEW_DOMAIN)
    assert estimator.tokenizer_.get_vocab() == vocabulary
    assert np.isfinite(estimator.score_samples(NEW_DOMAIN)).all()


# --------------------------------------------------------------------------- what "auto" reads

@pytest.mark.parametrize("params, expected", [
    ({}, {"tokenizer": "word", "vocab_size": 32000, "lowercase": True, "max_length": 4096}),
    ({"architecture": "gru"}, {"tokenizer": "bpe", "vocab_size": 4000, "lowercase": False, "max_length": 128}),
    # The bag of words with a sequence decoder must spell any word back: BPE.
    ({"decoder": "gru"}, {"tokenizer": "bpe", "vocab_size": 4000, "lowercase": False, "max_length": 128}),
    ({"tokenizer": "char", "vocab_size": 300, "lowercase": False, "max_length": 64},
     {"tokenizer": "char", "vocab_size": 300, "lowercase": False, "max_length": 64}),
])
def test_auto_text_settings_follow_the_model(params, expected):
    assert sktextae.network.text_settings(TextAutoencoder(**params).get_params()) == expected


@pytest.mark.parametrize("architecture, lowercased, cut", [("bow", True, 4096), ("gru", False, 128)])
def test_the_fitted_tokenizer_is_the_one_auto_chose(architecture, lowercased, cut, tiny, texts):
    estimator = tiny(architecture=architecture, max_epochs=1).fit(texts)
    assert estimator.get_params()["tokenizer"] == "auto"  # the parameter stays as given
    assert estimator.max_length_ == cut
    assert decode(estimator.tokenizer_, encode(estimator.tokenizer_, ["The Oven"], max_length=cut)[0])[0] == (
        "the oven" if lowercased else "The Oven")
    assert type(estimator.tokenizer_.model).__name__ == ("WordLevel" if architecture == "bow" else "BPE")


def test_bag_of_words_bottleneck_starts_from_the_pca_of_its_encoder(tiny, texts):
    # lr so small that the start is what transform gives: each latent unit has variance 1 on the
    # training texts and the units are mixed principal components, so their covariance is a rotation of
    # a diagonal one, whose eigenvalues decrease.
    estimator = tiny(architecture="bow", max_epochs=1, lr=1e-12, validation_fraction=0.0, latent_dim=4).fit(texts)
    Z = estimator.transform(texts)
    assert Z.var(axis=0).mean() == pytest.approx(1.0, rel=0.05)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.05)
    eigenvalues = np.linalg.eigvalsh(np.cov(Z, rowvar=False, bias=True))
    assert eigenvalues.min() > 0.05 * eigenvalues.max()  # no unit is left at (near) zero variance


def test_a_new_bag_of_words_starts_as_lsa_of_its_training_texts(tiny, texts):
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfTransformer

    from sktextae.nn.bow import BIGRAM_WEIGHT
    from sktextae.tokenization import UNK_ID

    # lr so small that the start is what transform gives. The projection is LSA of the texts' TF-IDF
    # over their words and the bigrams of words that two texts or more hold (128 components, more than the
    # 40 texts: all of their span), the bottleneck its principal components and nothing of the MLP's
    # columns, so the latent vectors are a linear map of the first principal components of the texts'
    # TF-IDF vectors.
    estimator = tiny(architecture="bow", max_epochs=1, lr=1e-12, validation_fraction=0.0, latent_dim=4,
                     embedding_dim=None).fit(texts)
    encoder = estimator.net_.module_.encoder
    assert encoder.weighting == "tfidf" and encoder.embedding.weight.shape[1] == 128  # at least latent_dim
    weight = estimator.net_.module_.bottleneck.mean_layer.weight.detach().numpy()  # (L, H + C)
    assert np.abs(weight[:, :encoder.projection.start]).max() < 1e-9
    # The words it counts, of two letters or digits or more: marks and single letters count as nothing (0).
    terms = estimator.vocabulary_.bag_terms(min_word_chars=2)
    words, bigrams = [], []
    for sequence in encode(estimator.tokenizer_, texts, max_length=estimator.max_length_)[0]:
        sequence = terms[sequence]
        words.append(collections.Counter(int(term) for term in sequence if term))
        bigrams.append(collections.Counter((int(a), int(b)) for a, b in zip(sequence[:-1], sequence[1:])
                                           if a and b and UNK_ID not in (a, b)))
    held = sorted(bigram for bigram in set().union(*bigrams) if sum(bigram in text for text in bigrams) >= 2)
    assert 0 < len(held) <= encoder.bigrams and int((encoder.bigram_rows > 0).sum()) == len(held)
    vocabulary = [*sorted(set().union(*words)), *held]
    counts = np.array([[{**text_words, **text_bigrams}.get(term, 0) for term in vocabulary]
                       for text_words, text_bigrams in zip(words, bigrams)], dtype=float)
    tfidf = TfidfTransformer(sublinear_tf=True, norm=None).fit_transform(counts).toarray()
    tfidf[:, len(vocabulary) - len(held):] *= BIGRAM_WEIGHT
    tfidf /= np.linalg.norm(tfidf, axis=1, keepdims=True)
    components = PCA(4).fit_transform(tfidf)
    Z = estimator.transform(texts)
    design = np.c_[components, np.ones(len(texts))]  # (N, 5)
    residual = Z - design @ np.linalg.lstsq(design, Z, rcond=None)[0]
    assert (residual ** 2).sum() < 1e-6 * ((Z - Z.mean(0)) ** 2).sum()


def test_a_new_bag_decoder_starts_at_its_training_texts_token_frequencies(tiny, texts):
    from sktextae.lsa_start import BAG_SMOOTHING

    def start_and_shares(**params):
        """The decoder's output bias after a fit at an lr so small that it is the start, and the smoothed share
        of each token among the texts' tokens as the fitted model's own tokenizer reads them."""
        estimator = tiny(max_epochs=1, lr=1e-12, validation_fraction=0.0, patience=None, **params).fit(texts)
        bias = estimator.net_.module_.decoder.output.bias.detach().double()
        sequences, _ = encode(estimator.tokenizer_, texts, max_length=estimator.max_length_)
        counts = np.bincount(np.concatenate(sequences), minlength=len(bias)) + BAG_SMOOTHING
        return bias, torch.from_numpy(counts / counts.sum())

    start, shares = start_and_shares(architecture="bow")  # the bag decoder predicts each text's own tokens
    torch.testing.assert_close(start.softmax(0), shares)
    # A sequence decoder beside the bag-of-words encoder keeps its own start.
    start, shares = start_and_shares(encoder="bow", decoder="gru")
    assert not torch.allclose(start.softmax(0), shares, atol=1e-3)


def test_a_bag_of_words_of_characters_counts_each_character_and_no_bigram(tiny, texts):
    from sktextae import network

    estimator = tiny(architecture="bow", tokenizer="char", max_epochs=1).fit(texts)
    encoder = estimator.net_.module_.encoder
    assert network.spec_of(estimator.net_).bow_counts == "words" and encoder.bigrams == 0
    letters = [estimator.tokenizer_.token_to_id(letter) for letter in "abc"]
    assert (encoder.terms[letters] > 0).all() and (encoder.idf[letters] > 0).all()  # single characters count
    assert np.unique(estimator.transform(texts).round(4), axis=0).shape[0] > 1


class AnchorSeen(Callback):
    """What ``net.anchor_`` holds at the start of training: (the weights' names, their start values)."""

    def on_train_begin(self, net, **kwargs):
        named = {id(weight): name for name, weight in net.module_.named_parameters()}
        self.seen = None if net.anchor_ is None else {named[id(weight)]: start.clone() for weight, start in net.anchor_}


def test_a_bag_of_words_autoencoder_is_held_near_its_lsa_start(tiny, texts, monkeypatch):
    def fit(**overrides):
        params = {"architecture": "bow", "lr": 0.05, "max_epochs": 4, "callbacks": [("seen", AnchorSeen())]}
        estimator = tiny(**{**params, **overrides}).fit(texts)
        return estimator, dict(estimator.net_.callbacks_)["seen"].seen

    start, _ = fit(lr=1e-12, max_epochs=1)
    held, anchor = fit()
    # The anchor is the encoder's and the bottleneck's weights as the LSA and PCA starts left them.
    assert {name.split(".")[0] for name in anchor} == {"encoder", "bottleneck"}
    assert "encoder.embedding.weight" in anchor and "bottleneck.project.weight" in anchor
    for name, weight in start.net_.module_.named_parameters():
        if name in anchor:
            torch.testing.assert_close(anchor[name], weight.detach(), atol=1e-6, rtol=0, msg=name)
    assert held.net_.anchor_ is None  # the fit's own: neither kept nor pickled
    assert pickle.loads(pickle.dumps(held)).net_.anchor_ is None

    monkeypatch.setattr(sktextae.training, "ANCHOR_WEIGHT", 0.0)
    free, _ = fit()

    def distance(estimator):
        weights = dict(estimator.net_.module_.named_parameters())
        return sum(float((weights[name].detach() - value).pow(2).sum()) for name, value in anchor.items())

    assert distance(held) < 0.8 * distance(free)  # the same fit without the penalty: 1
    held.partial_fit(texts)  # adapting a fitted model: not held
    assert dict(held.net_.callbacks_)["seen"].seen is None


@pytest.mark.parametrize("architecture", ["gru", "bow"])
def test_only_a_bag_of_words_autoencoder_is_anchored(architecture, tiny, texts, labels):
    def seen(estimator):
        return dict(estimator.net_.callbacks_)["seen"].seen

    assert (seen(tiny(architecture=architecture, callbacks=[("seen", AnchorSeen())]).fit(texts)) is not None) == (
        architecture == "bow")
    classifier = TextAutoencoderClassifier(**{**tiny().get_params(), "architecture": architecture,
                                              "callbacks": [("seen", AnchorSeen())]}).fit(texts, labels)
    assert seen(classifier) is None  # a supervised fit is not held: its labels decide


@pytest.mark.parametrize("latent_dim, width", [(16, 128), (256, 256)])
def test_the_bag_of_words_embeddings_are_at_least_as_wide_as_the_latent(latent_dim, width):
    params = TextAutoencoder(latent_dim).get_params()
    assert sktextae.network.embedding_dim(params) == width
    assert sktextae.network.embedding_dim({**params, "architecture": "gru"}) == 128
    assert sktextae.network.embedding_dim({**params, "embedding_dim": 32}) == 32


# --------------------------------------------------------------------------- lowercase

CASE_VARIANTS = ["Hello World", "hello world", "HELLO wORLD"]


def test_lowercase_is_a_parameter(tiny):
    assert TextAutoencoder().get_params()["lowercase"] == "auto"
    estimator = tiny(lowercase=True)
    assert estimator.get_params()["lowercase"] is True
    assert clone(estimator).get_params()["lowercase"] is True
    assert clone(estimator).set_params(lowercase=False).get_params()["lowercase"] is False


@pytest.mark.parametrize("architecture", ["gru", "bow"])
def test_lowercase_gives_case_variants_the_same_outputs(architecture, tiny, texts, tmp_path):
    # BPE spells the unseen "Hello" and "hello" apart, which a word tokenizer would map to one [UNK].
    estimator = tiny(architecture=architecture, tokenizer="bpe", lowercase=True).fit(texts)
    Z = estimator.transform(CASE_VARIANTS)
    np.testing.assert_array_equal(Z[1:], np.repeat(Z[:1], 2, axis=0))
    scores = estimator.score_samples(CASE_VARIANTS)
    assert scores[0] == scores[1] == scores[2]
    joblib.dump(estimator, tmp_path / "model.joblib")
    for restored in (pickle.loads(pickle.dumps(estimator)), joblib.load(tmp_path / "model.joblib")):
        np.testing.assert_array_equal(restored.transform(CASE_VARIANTS), Z)
    cased = tiny(architecture=architecture, tokenizer="bpe", lowercase=False).fit(texts)
    Z = cased.transform(CASE_VARIANTS)
    assert not np.array_equal(Z[0], Z[1]) and not np.array_equal(Z[1], Z[2])


@pytest.mark.parametrize("tokenizer", ["word", "char"])
def test_lowercase_reconstructions_are_lowercase(tokenizer, tiny, texts):
    # The "word" and "char" vocabularies learnt from lowercased texts hold no capital letter at all;
    # with "bpe" every byte stays in the vocabulary, capitals included.
    estimator = tiny(tokenizer=tokenizer, lowercase=True).fit(texts)
    assert not any(character.isupper() for token in estimator.tokenizer_.get_vocab() for character in token
                   if not token.startswith("["))
    decoded = estimator.inverse_transform(estimator.transform(texts))
    assert all(text == text.lower() for text in decoded)
    assert any(text != text.lower() for text in texts)


def test_partial_fit_keeps_the_fitted_lowercasing(tiny, texts):
    # As with tokenizer and vocab_size, a changed lowercase takes effect at the next fit, not in partial_fit.
    estimator = tiny(lowercase=True).fit(texts)
    estimator.set_params(lowercase=False).partial_fit(texts)
    Z = estimator.transform(CASE_VARIANTS)
    np.testing.assert_array_equal(Z[0], Z[1])
    estimator.fit(texts)
    Z = estimator.transform(CASE_VARIANTS)
    assert not np.array_equal(Z[0], Z[1])


# --------------------------------------------------------------------------- early stopping, verbose

# With compile=True, EarlyStopping copies and restores the state dict of the compiled wrapper.
@pytest.mark.parametrize("architecture, compile", [(architecture, False) for architecture in ARCHITECTURES]
                         + [("bow", True)])
def test_early_stopping_stops_and_keeps_best_weights(architecture, compile, tiny, texts, request):
    if compile:
        request.getfixturevalue("fast_compile")
    estimator = tiny(architecture=architecture, validation_fraction=0.2, patience=1, max_epochs=50, lr=0.1,
                     compile=compile)
    estimator.fit(texts)
    assert _is_compiled(estimator.net_.module_) == compile
    history = estimator.net_.history
    assert len(history) < 50  # with patience=1 and this lr the validation loss stops improving early
    valid_loss = history[:, "valid_loss"]
    assert len(valid_loss) == len(history) and np.isfinite(valid_loss).all()

    # The kept weights are the best epoch's: the held-out texts (one batch) score -min(valid_loss).
    _, validation = estimator.net_.train_split(None)
    assert len(validation) == round(0.2 * len(texts))
    held_out = decode(estimator.tokenizer_, validation.sequences)
    # The bag of words reads lowercased words by default (tokenizer="auto").
    assert set(held_out) <= ({text.lower() for text in texts} if architecture == "bow" else set(texts))
    assert -estimator.score(held_out) == pytest.approx(min(valid_loss), rel=1e-5)


def test_no_early_stopping_trains_all_epochs(tiny, texts):
    estimator = tiny(validation_fraction=0.2, patience=None, max_epochs=4).fit(texts)
    assert len(estimator.net_.history) == 4
    assert np.isfinite(estimator.net_.history[:, "valid_loss"]).all()
    assert "valid_loss" not in tiny(max_epochs=1).fit(texts).net_.history[-1]


def test_verbose_prints_an_epoch_log(tiny, texts, capsys):
    tiny(verbose=1, validation_fraction=0.25, max_epochs=2).fit(texts)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out
    assert re.search(r"^\s+1\s", out, flags=re.MULTILINE)
    assert re.search(r"^\s+2\s", out, flags=re.MULTILINE)


def test_verbose_zero_is_silent(tiny, texts, capsys):
    estimator = tiny(verbose=0, validation_fraction=0.25, patience=1, max_epochs=3).fit(texts)
    estimator.partial_fit(texts)
    estimator.inverse_transform(estimator.transform(texts[:2]))
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- torch.compile

def _is_compiled(module):
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def test_compile_trains_the_same_model(tiny, texts, tmp_path):
    """torch.compile for real, inductor included, on the smallest network: about 30 s on a 2-core CPU,
    half that once inductor's on-disk cache holds the kernels (other compile tests use ``fast_compile``)."""
    # dropout=0: compiled dropout draws from another random stream than eager dropout.
    params = dict(architecture="bow", dropout=0.0, validation_fraction=0.25, patience=2, max_epochs=3)
    plain = tiny(**params).fit(texts)
    torch.compiler.reset()  # compile afresh, not from the caches of another test
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = tiny(compile=True, **params).fit(texts)
    assert _is_compiled(compiled.net_.module_) and not _is_compiled(plain.net_.module_)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # training ran compiled graphs
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(compiled.net_.history[:, key], plain.net_.history[:, key], rtol=1e-4)
    Z = compiled.transform(texts)
    np.testing.assert_allclose(Z, plain.transform(texts), rtol=1e-4, atol=1e-4)
    assert compiled.score(texts) == pytest.approx(plain.score(texts), rel=1e-4)
    assert compiled.inverse_transform(Z[:5]).tolist() == plain.inverse_transform(Z[:5]).tolist()

    joblib.dump(compiled, tmp_path / "model.joblib")
    for restored in (pickle.loads(pickle.dumps(compiled)), joblib.load(tmp_path / "model.joblib")):
        assert _is_compiled(restored.net_.module_)
        np.testing.assert_array_equal(restored.transform(texts), Z)
    restored.partial_fit(texts)  # and trains on, compiled
    assert len(restored.net_.history) == 4 and np.isfinite(restored.net_.history[-1, "train_loss"])
    cloned = clone(compiled)
    assert cloned.get_params()["compile"] is True and not hasattr(cloned, "net_")


# Not "transformer" (nor "lstm", a "gru" with another cell) on the CPU: capturing it takes 10 s or more
# even without inductor; TestCuda compiles every architecture.
@pytest.mark.parametrize("architecture", ["gru", "bow"])
def test_compiled_model_offers_every_method(architecture, tiny, texts, fast_compile):
    estimator = tiny(architecture=architecture, variational=True, compile=True).fit(texts)
    assert fast_compile and _is_compiled(estimator.net_.module_)
    Z = estimator.transform(texts)
    assert Z.shape == (len(texts), 8) and np.isfinite(estimator.score_samples(texts)).all()
    assert estimator.inverse_transform(Z[:2]).shape == estimator.sample(2, random_state=0).shape == (2,)
    assert estimator.interpolate(texts[0], texts[1], n_steps=3).shape == (3,)
    assert estimator.get_feature_names_out().shape == (8,)
    estimator.partial_fit(texts[:10])
    assert len(estimator.net_.history) == 3


# --------------------------------------------------------------------------- devices

def test_cpu_device(tiny, texts):
    estimator = tiny(device="cpu").fit(texts)
    assert estimator.device_ == "cpu"
    assert estimator.net_.use_bf16 is False
    assert all(parameter.device.type == "cpu" for parameter in estimator.net_.module_.parameters())
    assert estimator.transform(texts).dtype == np.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
class TestCuda:
    @pytest.mark.parametrize("architecture", ARCHITECTURES)
    def test_fit_on_cuda(self, architecture, tiny, texts, tmp_path):
        cuda_state = torch.cuda.get_rng_state()
        estimator = tiny(architecture=architecture, device="auto").fit(texts)
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
        assert estimator.device_.startswith("cuda")
        assert estimator.net_.use_bf16 == torch.cuda.is_bf16_supported()
        assert next(estimator.net_.module_.parameters()).device.type == "cuda"

        Z = estimator.transform(texts)
        assert Z.dtype == np.float32 and Z.shape == (len(texts), 8)
        assert np.isfinite(Z).all()
        assert np.isfinite(estimator.score_samples(texts)).all()
        decoded = estimator.inverse_transform(Z[:3])

        joblib.dump(estimator, tmp_path / "model.joblib")
        for restored in (pickle.loads(pickle.dumps(estimator)), joblib.load(tmp_path / "model.joblib")):
            np.testing.assert_array_equal(restored.transform(texts), Z)
            np.testing.assert_array_equal(restored.inverse_transform(Z[:3]), decoded)

    @pytest.mark.parametrize("architecture", ARCHITECTURES)
    def test_compile_on_cuda(self, architecture, tiny, texts, tmp_path):
        params = dict(architecture=architecture, device="cuda", dropout=0.0, validation_fraction=0.25, patience=2,
                      max_epochs=3)
        plain = tiny(**params).fit(texts)
        torch.compiler.reset()
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        compiled = tiny(compile=True, **params).fit(texts)
        assert _is_compiled(compiled.net_.module_)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
        # bf16 autocast: the compiled and eager kernels round differently.
        np.testing.assert_allclose(compiled.net_.history[:, "train_loss"], plain.net_.history[:, "train_loss"],
                                   rtol=2e-2)
        Z = compiled.transform(texts)
        np.testing.assert_allclose(Z, plain.transform(texts), rtol=5e-2, atol=5e-2)
        restored = pickle.loads(pickle.dumps(compiled))
        np.testing.assert_array_equal(restored.transform(texts), Z)
        restored.partial_fit(texts)
        assert len(restored.net_.history) == 4

    def test_cuda_model_partial_fit_and_clone(self, tiny, texts):
        estimator = tiny(device="auto").fit(texts)
        estimator.partial_fit(texts)
        assert len(estimator.net_.history) == 3
        assert clone(estimator).get_params() == estimator.get_params()


# --------------------------------------------------------------------------- encoder= and decoder=

@pytest.mark.parametrize("decoder", SCRATCH_DECODERS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_and_decoder_pair_fits_transforms_and_decodes(encoder, decoder, tiny, texts):
    estimator = tiny(encoder=encoder, decoder=decoder, max_epochs=1).fit(texts)
    assert type(estimator.net_.module_.encoder).__name__.lower().startswith(
        {"bow": "bagofwords", "gru": "recurrent", "lstm": "recurrent"}.get(encoder, encoder))
    Z = estimator.transform(texts[:3])
    assert Z.shape == (3, 8) and np.isfinite(Z).all()
    assert estimator.inverse_transform(Z).shape == (3,)
    assert np.isfinite(estimator.score(texts[:3]))


def test_encoder_and_decoder_override_the_architecture(tiny, texts):
    estimator = tiny(architecture="transformer", decoder="bag", max_epochs=1).fit(texts)
    assert type(estimator.net_.module_.encoder).__name__ == "TransformerEncoder"
    assert estimator.net_.module_.is_sequence_decoder is False


@pytest.mark.parametrize("params, message", [
    ({"decoder": "cnn"}, "'decoder' parameter"),
    ({"encoder": "cnn"}, r"neither one of \('transformer', 'gru', 'lstm', 'conv', 'bow'\)"),
])
def test_an_unknown_encoder_or_decoder_lists_the_valid_names(params, message, tiny, texts):
    with pytest.raises(ValueError, match=message):
        tiny(**params).fit(texts)


@pytest.mark.parametrize("overrides, expected", [
    ({"architecture": "bow"}, 3e-3),
    ({"architecture": "gru"}, 3e-3),
    ({"architecture": "transformer"}, 1e-3),
    ({"encoder": "conv", "decoder": "transformer"}, 1e-3),
    ({"architecture": "transformer", "lr": 5e-4}, 5e-4),
])
def test_lr_auto_is_the_rate_for_the_architecture(overrides, expected):
    estimator = tiny_autoencoder(max_epochs=1, **overrides).fit(list(TEXTS))
    assert TextAutoencoder().lr == "auto"
    assert [group["lr"] for group in estimator.net_.optimizer_.param_groups] == [expected]
    assert estimator.get_params()["lr"] == overrides.get("lr", "auto")  # the parameter stays as given


def test_decoding_writes_no_more_tokens_than_the_longest_training_text(tiny, texts):
    from sktextae.tokenization import encode

    estimator = tiny(architecture="gru", max_epochs=1).fit(texts[:10])
    lengths = [len(s) for s in encode(estimator.tokenizer_, texts[:10], max_length=estimator.max_length_)[0]]
    assert estimator.decode_length_ == max(lengths) < estimator.max_length_
    decoded = estimator.inverse_transform(np.random.default_rng(0).normal(size=(20, 8)) * 5)
    decoded_lengths = [len(s) for s in encode(estimator.tokenizer_, list(decoded), max_length=10**6)[0]]
    assert max(decoded_lengths) <= estimator.decode_length_
    longer = [" ".join(texts)]  # partial_fit on a longer text raises the bound, up to max_length_
    assert estimator.partial_fit(longer).decode_length_ == estimator.max_length_


def test_a_pickle_from_before_decode_length_decodes_up_to_max_length(fitted_gru):
    estimator, _ = fitted_gru
    state = estimator.__getstate__()
    del state["decode_length_"]
    restored = TextAutoencoder.__new__(TextAutoencoder)
    restored.__setstate__(state)
    assert restored.decode_length_ == restored.max_length_


def test_default_decoding_writes_no_3gram_twice_and_the_guard_can_be_lifted(tiny, texts):
    from collections import Counter

    from sktextae.tokenization import encode

    # A barely trained decoder loops: one epoch on the corpus. Word tokens, so that encoding a decoded text
    # gives back the ids the decoder wrote.
    estimator = tiny(architecture="gru", max_epochs=1, tokenizer="word").fit(texts)
    Z = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    for options in ({}, {"strategy": "beam"}, {"strategy": "sample", "random_state": 0}):
        decoded = estimator.inverse_transform(Z, **options)
        for ids in encode(estimator.tokenizer_, list(decoded), max_length=10**6)[0]:
            trigrams = Counter(zip(ids, ids[1:], ids[2:]))
            assert max(trigrams.values(), default=0) <= 1, (options, decoded)
    unguarded = estimator.inverse_transform(Z, no_repeat_ngram_size=0)
    assert list(unguarded) != list(estimator.inverse_transform(Z))  # the guard changed what a loop wrote
    with pytest.raises(ValueError, match="length_penalty"):
        estimator.inverse_transform(Z, length_penalty=1.0)  # beam only


def test_a_bag_decoder_takes_no_repetition_options(tiny, texts):
    estimator = tiny(architecture="bow", max_epochs=1).fit(texts)
    Z = estimator.transform(texts[:2])
    assert estimator.inverse_transform(Z).shape == (2,)  # the default guard is for sequence decoders only
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        estimator.inverse_transform(Z, no_repeat_ngram_size=2)
