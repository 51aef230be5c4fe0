"""Contract and behaviour tests of ``TextAutoencoderClassifier`` and ``TextAutoencoderRegressor``.

As in test_estimator.py: scikit-learn's data-free checks run directly, and the data-dependent ones are
written out with texts (clone, pickle, Pipeline, GridSearchCV, set_output, NotFittedError). Then the
supervised contract: labels of every type, unlabelled texts (-1 / None, NaN), targets of one or several
columns, starting from a ``pretrained`` TextAutoencoder without changing it, and outlier scoring with
``TextAutoencoder.score_samples``. Every model is tiny (the ``tiny`` fixture's parameters).
"""

import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sktextae._sklearn_private import InvalidParameterError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EpochTimer

from conftest import DATA_FREE_CHECKS
from sktextae import TextAutoencoder, TextAutoencoderClassifier, TextAutoencoderRegressor
from sktextae.tokenization import encode

ESTIMATORS = [TextAutoencoderClassifier, TextAutoencoderRegressor]
N_COOKING = 20  # conftest's corpus: 20 cooking texts, then 20 computing texts


def tiny_model(cls, tiny, **overrides):
    """``cls`` with the tiny parameters of conftest's ``tiny`` fixture."""
    return cls(**{**tiny().get_params(), **overrides})


def targets_for(cls, labels):
    """Labels for the classifier, targets (0 for cooking, 10 for computing) for the regressor."""
    return labels if cls is TextAutoencoderClassifier else labels * 10.0


def head_outputs(estimator, texts):
    """What each estimator predicts that its head computes: probabilities or targets."""
    if is_classifier(estimator):
        return estimator.predict_proba(texts)
    return estimator.predict(texts)


def _fit_on_topics(cls, tiny, corpus):
    topics = np.array([0] * N_COOKING + [1] * (len(corpus) - N_COOKING))
    return tiny_model(cls, tiny).fit(list(corpus), targets_for(cls, topics))


@pytest.fixture(scope="module")
def fitted_classifier(tiny, corpus):
    """A tiny classifier fitted on the two topics; tests must not change it."""
    return _fit_on_topics(TextAutoencoderClassifier, tiny, corpus)


@pytest.fixture(scope="module")
def fitted_regressor(tiny, corpus):
    """A tiny regressor fitted on 0 for cooking, 10 for computing; tests must not change it."""
    return _fit_on_topics(TextAutoencoderRegressor, tiny, corpus)


@pytest.fixture(params=["fitted_classifier", "fitted_regressor"])
def fitted(request):
    """Each of the two fitted estimators in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def pretrained(tiny, corpus):
    """A fitted tiny TextAutoencoder to start from, with a snapshot of its weights and latents."""
    autoencoder = tiny(max_epochs=3).fit(list(corpus))
    state = {name: tensor.clone() for name, tensor in autoencoder.net_.module_.state_dict().items()}
    return autoencoder, state, autoencoder.transform(list(corpus))


def assert_pretrained_unchanged(pretrained, texts):
    autoencoder, state, Z = pretrained
    current = autoencoder.net_.module_.state_dict()
    assert current.keys() == state.keys()
    assert all(torch.equal(current[name], tensor) for name, tensor in state.items())
    np.testing.assert_array_equal(autoencoder.transform(texts), Z)


# --------------------------------------------------------------------------- scikit-learn's own checks



@pytest.mark.parametrize("config", ["default", "tiny", "pretrained"])
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_sklearn_data_free_check(cls, check, config, tiny, pretrained):
    if config == "default":
        estimator = cls()
    elif config == "tiny":
        estimator = tiny_model(cls, tiny, callbacks=[EpochTimer()], reconstruction_weight=0.5)
    else:
        estimator = tiny_model(cls, tiny, pretrained=pretrained[0])
    check(cls.__name__, estimator)


def test_tags():
    for cls, estimator_type in [(TextAutoencoderClassifier, "classifier"), (TextAutoencoderRegressor, "regressor")]:
        tags = cls().__sklearn_tags__()
        assert tags.estimator_type == estimator_type
        assert tags.input_tags.string is True
        assert tags.input_tags.two_d_array is False
        assert tags.target_tags.required is True
    assert is_classifier(TextAutoencoderClassifier()) and not is_regressor(TextAutoencoderClassifier())
    assert is_regressor(TextAutoencoderRegressor()) and not is_classifier(TextAutoencoderRegressor())
    assert TextAutoencoderRegressor().__sklearn_tags__().target_tags.multi_output is True


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_param_validation_comes_before_input_validation(cls):
    with pytest.raises(InvalidParameterError, match="'reconstruction_weight' parameter"):
        cls(reconstruction_weight=-1).fit("not a list of texts", None)


# --------------------------------------------------------------------------- clone, pickle, NotFittedError

@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_clone_unfitted_has_equal_params(cls, tiny):
    estimator = tiny_model(cls, tiny, latent_dim=5, reconstruction_weight=0.3)
    cloned = clone(estimator)
    assert cloned is not estimator
    assert cloned.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)


def test_clone_fitted_gives_unfitted(fitted, corpus):
    cloned = clone(fitted)
    assert type(cloned) is type(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not [name for name in vars(cloned) if name.endswith("_") and not name.startswith("_")]
    with pytest.raises(NotFittedError):
        cloned.predict(list(corpus))


def test_clone_keeps_set_output_config(fitted, corpus):
    cloned = clone(clone(fitted).set_output(transform="pandas"))
    cloned.fit(list(corpus[:8]) + list(corpus[-8:]), targets_for(type(fitted), np.repeat([0, 1], 8)))
    assert isinstance(cloned.transform(list(corpus[:2])), pd.DataFrame)


@pytest.mark.parametrize("cls, method", [(TextAutoencoderClassifier, "predict_proba")] + [
    (cls, method) for cls in ESTIMATORS for method in ("predict", "transform", "score", "score_samples")])
def test_unfitted_raises_not_fitted_error(cls, method, tiny, texts, labels):
    estimator = tiny_model(cls, tiny)
    args = (texts, targets_for(cls, labels)) if method == "score" else (texts,)
    with pytest.raises(NotFittedError):
        getattr(estimator, method)(*args)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_fit_returns_self_and_sets_only_trailing_underscore_attributes(cls, tiny, texts, labels):
    estimator = tiny_model(cls, tiny, max_epochs=1)
    params = estimator.get_params()
    before = set(vars(estimator))
    assert estimator.fit(texts, targets_for(cls, labels)) is estimator
    added = set(vars(estimator)) - before
    assert all(name.endswith("_") and not name.startswith("_") for name in added), sorted(added)
    assert added == {"tokenizer_", "vocabulary_", "net_", *cls._fitted_attributes}
    assert estimator.get_params() == params


def test_pickle_round_trip_gives_identical_outputs(fitted, texts, tmp_path):
    outputs = {method: getattr(fitted, method)(texts) for method in ("predict", "predict_proba", "transform")
               if hasattr(fitted, method)}
    joblib.dump(fitted, tmp_path / "model.joblib")
    for restored in (pickle.loads(pickle.dumps(fitted)), joblib.load(tmp_path / "model.joblib")):
        assert type(restored) is type(fitted)
        assert restored.get_params() == fitted.get_params()
        for method, output in outputs.items():
            np.testing.assert_array_equal(getattr(restored, method)(texts), output)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_same_random_state_gives_identical_fits(cls, tiny, texts, labels):
    y = targets_for(cls, labels)
    first = head_outputs(tiny_model(cls, tiny, max_epochs=1).fit(texts, y), texts)
    np.testing.assert_array_equal(head_outputs(tiny_model(cls, tiny, max_epochs=1).fit(texts, y), texts), first)
    assert not np.allclose(head_outputs(tiny_model(cls, tiny, max_epochs=1, random_state=1).fit(texts, y), texts),
                           first)


# --------------------------------------------------------------------------- composition

def test_pipelines(tiny, texts, labels):
    # The classifier as the last step, and as a feature extractor for another model, beside the usual
    # TextAutoencoder -> LogisticRegression pipeline.
    pipelines = [
        Pipeline([("texts", "passthrough"), ("clf", tiny_model(TextAutoencoderClassifier, tiny))]),
        Pipeline([("encode", tiny_model(TextAutoencoderClassifier, tiny)), ("logreg", LogisticRegression())]),
        make_pipeline(tiny(), LogisticRegression()),
    ]
    for pipeline in pipelines:
        pipeline.fit(texts, labels)
        assert pipeline.predict(texts).shape == (len(texts),)
        assert set(pipeline.predict(texts).tolist()) <= {0, 1}
        assert pipeline.predict_proba(texts).shape == (len(texts), 2)
        assert 0 <= pipeline.score(texts, labels) <= 1
    # The supervised first step was fitted with the labels that the Pipeline passed on.
    assert pipelines[1][0].n_labelled_ == len(texts)
    assert pipelines[1][:-1].get_feature_names_out().tolist() == [f"textautoencoderclassifier{i}" for i in range(8)]


def test_grid_search_classifier_default_score_is_accuracy(tiny, texts, labels):
    search = GridSearchCV(tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1),
                          {"reconstruction_weight": [0.0, 1.0]}, cv=2, error_score="raise").fit(texts, labels)
    scores = search.cv_results_["mean_test_score"]
    assert ((0 <= scores) & (scores <= 1)).all()
    assert search.best_params_["reconstruction_weight"] in (0.0, 1.0)
    assert search.best_estimator_.predict(texts).shape == (len(texts),)
    # No scoring given: the classifier's own score, accuracy.
    best = search.best_estimator_
    assert best.score(texts, labels) == np.mean(best.predict(texts) == labels)


def test_grid_search_regressor_default_score_is_r2(tiny, texts, labels):
    y = labels * 10.0
    search = GridSearchCV(tiny_model(TextAutoencoderRegressor, tiny, max_epochs=1),
                          {"reconstruction_weight": [0.0, 1.0]}, cv=2, error_score="raise").fit(texts, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert (search.cv_results_["mean_test_score"] <= 1).all()
    best = search.best_estimator_
    residual = ((y - best.predict(texts)) ** 2).sum()
    assert best.score(texts, y) == pytest.approx(1 - residual / ((y - y.mean()) ** 2).sum(), rel=1e-5)


# --------------------------------------------------------------------------- set_output, feature names

def test_set_output_pandas_names_columns(fitted, corpus):
    prefix = type(fitted).__name__.lower()
    estimator = pickle.loads(pickle.dumps(fitted)).set_output(transform="pandas")  # leave `fitted` as it was
    frame = estimator.transform(list(corpus))
    assert isinstance(frame, pd.DataFrame)
    assert frame.columns.tolist() == [f"{prefix}{i}" for i in range(8)]
    np.testing.assert_array_equal(frame.to_numpy(), fitted.transform(list(corpus)))
    assert fitted.get_feature_names_out().tolist() == frame.columns.tolist()
    # predict is no transform: set_output leaves it an array.
    assert isinstance(estimator.predict(list(corpus)), np.ndarray)


def test_transform_shape_and_dtype(fitted, texts):
    Z = fitted.transform(texts)
    assert Z.shape == (len(texts), 8) and Z.dtype == np.float32 and np.isfinite(Z).all()


# --------------------------------------------------------------------------- classifier: labels

def test_predict_proba_and_score(fitted_classifier, texts, labels):
    fitted = fitted_classifier
    proba = fitted.predict_proba(texts)
    assert proba.shape == (len(texts), 2)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted.predict(texts), fitted.classes_[proba.argmax(axis=1)])
    accuracy = fitted.score(texts, labels)
    assert 0 <= accuracy <= 1
    assert accuracy == np.mean(fitted.predict(texts) == labels)


LABEL_KINDS = {
    # name: (make y from the 0/1 topic of each text, expected classes_)
    "int": (lambda topic: topic, [0, 1]),
    "numpy-int8": (lambda topic: topic.astype(np.int8), [0, 1]),
    "str": (lambda topic: np.where(topic == 1, "computing", "cooking"), ["computing", "cooking"]),
    "str-list": (lambda topic: ["computing" if t else "cooking" for t in topic], ["computing", "cooking"]),
    "bool": (lambda topic: topic.astype(bool), [False, True]),
    "float": (lambda topic: topic * 2.0, [0.0, 2.0]),
    "series-of-str": (lambda topic: pd.Series(np.where(topic == 1, "pc", "food"), index=np.arange(40)[::-1]),
                      ["food", "pc"]),
    "series-category": (lambda topic: pd.Series(np.where(topic == 1, "pc", "food"), dtype="category"),
                        ["food", "pc"]),
    "three-classes": (lambda topic: topic + (np.arange(len(topic)) % 2) * 7, [0, 1, 7, 8]),
}


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_labels_of_every_type(kind, tiny, texts, labels):
    make_y, classes = LABEL_KINDS[kind]
    y = make_y(labels)
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1).fit(texts, y)
    assert clf.classes_.tolist() == classes
    assert clf.n_labelled_ == len(texts)
    predictions = clf.predict(texts)
    assert predictions.shape == (len(texts),)
    assert set(predictions.tolist()) <= set(classes)
    assert predictions.dtype == clf.classes_.dtype
    assert all(type(p) is type(classes[0]) for p in predictions.tolist())  # the labels' own type
    assert clf.predict_proba(texts).shape == (len(texts), len(classes))
    assert 0 <= clf.score(texts, y) <= 1


UNLABELLED_KINDS = {
    # name: (make y with every 4th text unlabelled, expected classes_)
    "int-minus-one": (lambda topic, unl: np.where(unl, -1, topic), [0, 1]),
    "float-minus-one": (lambda topic, unl: np.where(unl, -1.0, topic * 1.0), [0.0, 1.0]),
    "object-minus-one": (lambda topic, unl: np.array([-1 if u else ("b" if t else "a") for t, u in zip(topic, unl)],
                                                     dtype=object), ["a", "b"]),
    "list-str-and-minus-one": (lambda topic, unl: [-1 if u else ("b" if t else "a") for t, u in zip(topic, unl)],
                               ["a", "b"]),
    "object-none": (lambda topic, unl: np.array([None if u else ("b" if t else "a") for t, u in zip(topic, unl)],
                                                dtype=object), ["a", "b"]),
    "list-none": (lambda topic, unl: [None if u else ("b" if t else "a") for t, u in zip(topic, unl)], ["a", "b"]),
    # dtype=object keeps None as None; for pandas' str dtype (None stored as NaN) see
    # test_missing_values_in_a_pandas_string_series_are_unlabelled.
    "series-none": (lambda topic, unl: pd.Series([None if u else ("b" if t else "a") for t, u in zip(topic, unl)],
                                                 dtype=object), ["a", "b"]),
    "series-int-none": (lambda topic, unl: pd.Series([None if u else int(t) for t, u in zip(topic, unl)],
                                                     dtype=object), [0, 1]),
    "numpy-int64-minus-one": (lambda topic, unl: np.array([np.int64(-1) if u else np.int64(t)
                                                           for t, u in zip(topic, unl)], dtype=object), [0, 1]),
}


@pytest.mark.parametrize("kind", UNLABELLED_KINDS)
def test_unlabelled_markers(kind, tiny, texts, labels):
    make_y, classes = UNLABELLED_KINDS[kind]
    unlabelled = np.arange(len(texts)) % 4 == 3
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1).fit(texts, make_y(labels, unlabelled))
    assert clf.classes_.tolist() == classes  # sorted; -1 / None is no class
    assert clf.n_labelled_ == len(texts) - unlabelled.sum() == 30
    assert set(clf.predict(texts).tolist()) <= set(classes)


def test_minus_one_string_is_a_class(tiny, texts, labels):
    # Only the number -1 (or None) is unlabelled: the string "-1" is a label like any other.
    y = np.where(np.arange(len(texts)) % 4 == 3, "-1", np.where(labels == 1, "b", "a"))
    assert tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1).fit(texts, y).classes_.tolist() == \
        ["-1", "a", "b"]


def test_docstring_example_labels(tiny):
    # The class docstring's example: a list mixing str labels with -1 (numpy would make it "-1").
    texts = ["the cat sat on the mat", "stocks fell sharply", "a dog ran", "bonds rallied"] * 5
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1).fit(texts, ["pets", "markets", "pets", -1] * 5)
    assert clf.classes_.tolist() == ["markets", "pets"]
    assert clf.n_labelled_ == 15


@pytest.mark.parametrize("class_weight, expected", [
    ("balanced", [40 / (2 * 10), 40 / (2 * 30)]),  # n_samples / (n_classes * count), as in scikit-learn
    ({0: 1.0, 1: 3.0}, [1.0, 3.0]),
    (None, None),
])
def test_class_weight(class_weight, expected, tiny, texts):
    y = np.array([0, 1, 1, 1] * 10)
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1, class_weight=class_weight).fit(texts, y)
    if expected is None:
        assert clf.net_.class_weight is None
    else:
        np.testing.assert_allclose(clf.net_.class_weight, expected)
    assert clf.predict_proba(texts).shape == (len(texts), 2)


def test_class_weight_dict_with_str_labels(tiny, texts, labels):
    y = [-1 if i % 4 == 3 else ("b" if t else "a") for i, t in enumerate(labels)]
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1, class_weight={"a": 2.0, "b": 1.0}).fit(texts, y)
    np.testing.assert_allclose(clf.net_.class_weight, [2.0, 1.0])


BAD_LABELS = [
    pytest.param(lambda n: [-1] * n, ValueError, "Every text is unlabelled", id="all-minus-one"),
    pytest.param(lambda n: np.array([None] * n, dtype=object), ValueError, "Every text is unlabelled", id="all-none"),
    pytest.param(lambda n: [-1, 3] * (n // 2), ValueError, r"single class \(3\).*at least 2", id="one-class"),
    pytest.param(lambda n: ["a"] * n, ValueError, r"single class \('a'\)", id="one-str-class"),
    pytest.param(lambda n: np.r_[np.nan, np.arange(n - 1) % 2], ValueError, "y holds NaN", id="nan"),
    pytest.param(lambda n: np.arange(n) % 2 * 2.5, ValueError, "non-integer numbers such as 2.5.*Regressor",
                 id="continuous"),
    pytest.param(lambda n: [1, "a"] * (n // 2), TypeError, r"mixes label types \['int', 'str'\]", id="mixed-list"),
    pytest.param(lambda n: np.array([1, "a"] * (n // 2), dtype=object), TypeError, "mixes label types",
                 id="mixed-object-array"),
    pytest.param(lambda n: [0, 1] * (n // 2 - 1), ValueError, r"X has 40 texts but y has 38 labels",
                 id="length-mismatch"),
    pytest.param(lambda n: None, ValueError, r"needs labels: call fit\(X, y\)", id="none"),
    pytest.param(lambda n: np.zeros((n, 2)), ValueError, r"1-D.*shape \(40, 2\)", id="two-columns"),
]


@pytest.mark.parametrize("make_y, error, match", BAD_LABELS)
def test_bad_labels_raise(make_y, error, match, fitted_classifier, texts):
    snapshot = fitted_classifier.predict_proba(texts)
    estimator = pickle.loads(pickle.dumps(fitted_classifier))
    with pytest.raises(error, match=match):
        estimator.fit(texts, make_y(len(texts)))
    np.testing.assert_array_equal(estimator.predict_proba(texts), snapshot)  # a failed fit changes nothing


def test_labels_as_one_column(tiny, texts, labels):
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=1).fit(texts, labels[:, None])
    assert clf.classes_.tolist() == [0, 1]
    assert clf.predict(texts).shape == (len(texts),)


def test_bad_class_weight_raises(tiny, texts, labels):
    with pytest.raises(InvalidParameterError, match="'class_weight' parameter"):
        tiny_model(TextAutoencoderClassifier, tiny, class_weight="bad").fit(texts, labels)
    with pytest.raises(ValueError, match="not in class_weight"):
        tiny_model(TextAutoencoderClassifier, tiny, class_weight={0: 1.0, 5: 1.0}).fit(texts, labels)


# --------------------------------------------------------------------------- unlabelled texts

@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_unlabelled_texts_shape_the_encoder(cls, tiny, texts, labels):
    # Same seed, same labelled texts: with the unlabelled texts kept (marked -1 / NaN) the model differs
    # from one that never saw them, so they did take part in training.
    unlabelled = np.arange(len(texts)) % 4 == 3
    y = targets_for(cls, labels)
    marked = np.where(unlabelled, -1 if cls is TextAutoencoderClassifier else np.nan, y)
    with_them = tiny_model(cls, tiny).fit(texts, marked)
    without = tiny_model(cls, tiny).fit([t for t, u in zip(texts, unlabelled) if not u], y[~unlabelled])
    assert with_them.n_labelled_ == without.n_labelled_ == 30
    assert not np.allclose(head_outputs(with_them, texts), head_outputs(without, texts))


@pytest.mark.parametrize("reconstruction_weight", [0.0, 1.0])
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_unlabelled_texts_only_reach_the_reconstruction_loss(cls, reconstruction_weight, tiny, texts, labels):
    # To compare two fits batch for batch, only the *content* of the unlabelled texts changes: each is
    # replaced by its words in reverse order, the same number of tokens under a fixed (pretrained) word
    # tokenizer. Sizes, batches, their order and the dropout masks are then identical, so with
    # reconstruction_weight=0 an unlabelled text's gradient is exactly zero and the fits are identical;
    # with reconstruction_weight=1 its reconstruction loss changes the encoder.
    autoencoder = tiny(tokenizer="word", max_epochs=1).fit(texts)
    unlabelled = np.arange(len(texts)) % 4 == 2
    reversed_texts = [" ".join(t.split()[::-1]) if u else t for t, u in zip(texts, unlabelled)]
    lengths = [[len(s) for s in encode(autoencoder.tokenizer_, X, max_length=autoencoder.max_length_)[0]]
               for X in (texts, reversed_texts)]
    assert lengths[0] == lengths[1]
    assert sum(a != b for a, b in zip(texts, reversed_texts)) == unlabelled.sum()

    y = targets_for(cls, labels)
    y = np.where(unlabelled, -1 if cls is TextAutoencoderClassifier else np.nan, y)
    # On the CPU: CUDA's embedding backward sums with atomics, whose order (and rounding) varies.
    params = dict(pretrained=autoencoder, reconstruction_weight=reconstruction_weight, max_epochs=2, device="cpu")
    first = head_outputs(tiny_model(cls, tiny, **params).fit(texts, y), texts)
    second = head_outputs(tiny_model(cls, tiny, **params).fit(reversed_texts, y), texts)
    if reconstruction_weight == 0:
        np.testing.assert_array_equal(first, second)
    else:
        assert not np.allclose(first, second)


# --------------------------------------------------------------------------- regressor: targets

def test_regressor_one_and_several_targets(tiny, texts, labels):
    y = labels * 10.0
    regressor = tiny_model(TextAutoencoderRegressor, tiny, max_epochs=1)
    assert regressor.fit(texts, y).predict(texts).shape == (len(texts),)
    assert np.ndim(regressor.target_mean_) == 0
    assert regressor.n_labelled_ == len(texts)

    two = np.c_[y, -y + 3.0]
    predictions = regressor.fit(texts, two).predict(texts)
    assert predictions.shape == (len(texts), 2)
    np.testing.assert_allclose(regressor.target_mean_, two.mean(axis=0))
    np.testing.assert_allclose(regressor.target_scale_, two.std(axis=0))
    assert np.isfinite(regressor.score(texts, two))

    assert regressor.fit(texts, y[:, None]).predict(texts).shape == (len(texts), 1)
    assert regressor.fit(texts, list(y)).predict(texts).shape == (len(texts),)
    assert regressor.fit(texts, pd.Series(y)).predict(texts).shape == (len(texts),)


def test_regressor_nan_targets_are_unlabelled(tiny, texts, labels):
    y = labels * 10.0
    y[::4] = np.nan
    regressor = tiny_model(TextAutoencoderRegressor, tiny, max_epochs=1).fit(texts, y)
    assert regressor.n_labelled_ == 30
    assert regressor.target_mean_ == pytest.approx(np.nanmean(y))
    assert regressor.target_scale_ == pytest.approx(np.nanstd(y))
    assert np.isfinite(regressor.predict(texts)).all()

    # With several targets, a row with any NaN is unlabelled.
    two = np.c_[labels * 10.0, labels * 1.0]
    two[0, 1] = two[5, 0] = np.nan
    assert regressor.fit(texts, two).n_labelled_ == 38


def test_regressor_constant_target(tiny, texts):
    regressor = tiny_model(TextAutoencoderRegressor, tiny, max_epochs=1).fit(texts, np.full(len(texts), 4.0))
    assert regressor.target_scale_ == 1.0  # no spread: not divided by zero
    assert np.isfinite(regressor.predict(texts)).all()


BAD_TARGETS = [
    pytest.param(lambda n: np.full(n, np.nan), ValueError, "Every target is NaN", id="all-nan"),
    pytest.param(lambda n: np.r_[np.inf, np.arange(n - 1.0)], ValueError, "infinite value", id="inf"),
    pytest.param(lambda n: np.r_[-np.inf, np.arange(n - 1.0)], ValueError, "infinite value", id="minus-inf"),
    pytest.param(lambda n: ["a"] * n, TypeError, "y must hold numbers", id="str"),
    pytest.param(lambda n: [1.0, "a"] * (n // 2), TypeError, "y must hold numbers", id="mixed"),
    pytest.param(lambda n: np.arange(n - 2.0), ValueError, "X has 40 texts but y has 38 labels", id="length"),
    pytest.param(lambda n: None, ValueError, r"needs labels: call fit\(X, y\)", id="none"),
    pytest.param(lambda n: np.zeros((n, 2, 2)), ValueError, r"shape \(40, 2, 2\)", id="three-dimensional"),
]


@pytest.mark.parametrize("make_y, error, match", BAD_TARGETS)
def test_bad_targets_raise(make_y, error, match, fitted_regressor, texts):
    snapshot = fitted_regressor.predict(texts)
    estimator = pickle.loads(pickle.dumps(fitted_regressor))
    with pytest.raises(error, match=match):
        estimator.fit(texts, make_y(len(texts)))
    np.testing.assert_array_equal(estimator.predict(texts), snapshot)


def test_regressor_learns_an_easy_target(tiny, texts, labels):
    # 0 for cooking, 10 for computing: the head separates the topics well within 10 epochs (R^2 about
    # 0.85-0.93 over random_state 0-3 at this lr; the threshold leaves room for other platforms).
    y = labels * 10.0
    regressor = tiny_model(TextAutoencoderRegressor, tiny, max_epochs=10, lr=1e-2).fit(texts, y)
    assert regressor.score(texts, y) > 0.5
    predictions = regressor.predict(texts)
    assert predictions[labels == 1].mean() - predictions[labels == 0].mean() > 5


def test_classifier_learns_the_topics(tiny, texts, labels):
    clf = tiny_model(TextAutoencoderClassifier, tiny, max_epochs=10, lr=1e-2).fit(texts, labels)
    assert clf.score(texts, labels) >= 0.9


# --------------------------------------------------------------------------- pretrain, then fine-tune

@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_fine_tuning_reuses_and_never_changes_the_pretrained_model(cls, pretrained, tiny, texts, labels):
    autoencoder = pretrained[0]
    # The pretrained network and tokenizer are reused; its own values of their parameters are welcome here.
    estimator = tiny_model(cls, tiny, pretrained=autoencoder, latent_dim=autoencoder.latent_dim,
                           architecture=autoencoder.architecture)
    estimator.fit(texts, targets_for(cls, labels))

    assert estimator.tokenizer_ is not autoencoder.tokenizer_  # a copy
    assert estimator.tokenizer_.get_vocab() == autoencoder.tokenizer_.get_vocab()
    assert estimator.max_length_ == autoencoder.max_length_
    assert estimator.transform(texts).shape == (len(texts), autoencoder.latent_dim)
    assert estimator.get_feature_names_out().shape == (autoencoder.latent_dim,)
    assert type(estimator.net_.module_.autoencoder) is type(autoencoder.net_.module_)
    assert_pretrained_unchanged(pretrained, texts)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name, value", [("latent_dim", 5), ("architecture", "lstm"), ("vocab_size", 1000),
                                         ("tokenizer", "char"), ("max_length", 7), ("embedding_dim", 32),
                                         ("encoder", "conv"), ("variational", True)])
def test_a_shaping_parameter_that_disagrees_with_pretrained_is_refused(cls, name, value, pretrained, tiny, texts,
                                                                       labels):
    # Silently ignored, it would leave get_params disagreeing with the model: the error names both values.
    autoencoder = pretrained[0]
    estimator = tiny_model(cls, tiny, pretrained=autoencoder, **{name: value})
    with pytest.raises(ValueError, match=rf"{name}={value!r} here, but pretrained was fitted with {name}="
                                         rf"{getattr(autoencoder, name)!r}"):
        estimator.fit(texts, targets_for(cls, labels))
    assert not hasattr(estimator, "net_")
    assert_pretrained_unchanged(pretrained, texts)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_fine_tuning_starts_from_the_pretrained_weights(cls, pretrained, tiny, texts, labels):
    autoencoder = pretrained[0]
    # A learning rate of 1e-12 leaves the weights where they started: the latents are the pretrained ones.
    estimator = tiny_model(cls, tiny, pretrained=autoencoder, max_epochs=1, lr=1e-12)
    estimator.fit(texts, targets_for(cls, labels))
    np.testing.assert_allclose(estimator.transform(texts), autoencoder.transform(texts), atol=1e-5)
    # ... whereas a model trained from scratch does not share them.
    scratch = tiny_model(cls, tiny, max_epochs=1, lr=1e-12).fit(texts, targets_for(cls, labels))
    assert not np.allclose(scratch.transform(texts), autoencoder.transform(texts), atol=1e-2)

    # Fine-tuning for real moves the encoder, and still leaves the pretrained model as it was.
    tuned = tiny_model(cls, tiny, pretrained=autoencoder, max_epochs=2, lr=1e-2).fit(texts, targets_for(cls, labels))
    assert not np.allclose(tuned.transform(texts), autoencoder.transform(texts), atol=1e-3)
    assert_pretrained_unchanged(pretrained, texts)


@pytest.mark.parametrize("pretrained_lowercase", [True, False])
def test_fine_tuning_lowercases_as_the_pretrained_model_does(pretrained_lowercase, tiny, texts, labels):
    # The pretrained tokenizer is reused, its lowercasing with it: lowercase left at its default here
    # follows the pretrained model, and the other value is refused.
    # BPE spells the unseen "Hello" and "hello" apart, which a word tokenizer would map to one [UNK].
    autoencoder = tiny(architecture="bow", tokenizer="bpe", lowercase=pretrained_lowercase, max_epochs=1).fit(texts)
    for cls in ESTIMATORS:
        estimator = tiny_model(cls, tiny, pretrained=autoencoder, architecture="bow", max_epochs=1)
        estimator.fit(texts, targets_for(cls, labels))
        for restored in (estimator, pickle.loads(pickle.dumps(estimator))):
            Z = restored.transform(["Hello World", "hello world"])
            assert np.array_equal(Z[0], Z[1]) is pretrained_lowercase
        if not pretrained_lowercase:
            with pytest.raises(ValueError, match="lowercase=True here, but pretrained was fitted with lowercase=False"):
                tiny_model(cls, tiny, pretrained=autoencoder, architecture="bow",
                           lowercase=True).fit(texts, targets_for(cls, labels))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_lowercase_is_a_parameter(cls, tiny, texts, labels):
    assert cls().get_params()["lowercase"] == "auto"
    estimator = tiny_model(cls, tiny, lowercase=True, max_epochs=1)
    assert clone(estimator).get_params()["lowercase"] is True
    estimator.fit(texts, targets_for(cls, labels))
    Z = estimator.transform(["Hello World", "hello world"])
    np.testing.assert_array_equal(Z[0], Z[1])
    outputs = head_outputs(pickle.loads(pickle.dumps(estimator)), ["Hello World", "hello world"])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    with pytest.raises(InvalidParameterError, match="'lowercase' parameter"):
        tiny_model(cls, tiny, lowercase="yes").fit(texts, targets_for(cls, labels))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_clone_keeps_the_fitted_pretrained_model(cls, pretrained, tiny, texts, labels):
    autoencoder = pretrained[0]
    estimator = tiny_model(cls, tiny, pretrained=autoencoder, max_epochs=1)
    for source in (estimator, estimator.fit(texts, targets_for(cls, labels))):
        cloned = clone(source)
        assert cloned.pretrained is autoencoder
        check_is_fitted(cloned.pretrained)
        with pytest.raises(NotFittedError):
            check_is_fitted(cloned)
        assert cloned.get_params(deep=False) == source.get_params(deep=False)
    # A pickled model carries its own copy of the pretrained model.
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.pretrained is not autoencoder
    np.testing.assert_array_equal(restored.pretrained.transform(texts), autoencoder.transform(texts))
    assert_pretrained_unchanged(pretrained, texts)


# Either network compiled: a compiled network's state dict names its weights "_orig_mod.<name>".
@pytest.mark.parametrize("compile_pretrained, compile_tuned", [(True, False), (False, True)])
def test_fine_tuning_between_compiled_and_plain_networks(compile_pretrained, compile_tuned, tiny, texts, labels,
                                                         fast_compile):
    autoencoder = tiny(architecture="bow", compile=compile_pretrained, max_epochs=1).fit(texts)
    # A learning rate of 1e-12 leaves the weights where they started: the latents are the pretrained ones.
    estimator = tiny_model(TextAutoencoderClassifier, tiny, pretrained=autoencoder, architecture="bow",
                           compile=compile_tuned,
                           max_epochs=1, lr=1e-12).fit(texts, labels)
    networks = [module for module in fast_compile if not isinstance(module, torch.nn.Identity)]  # not the criterion
    assert len(networks) == compile_pretrained + compile_tuned
    assert hasattr(estimator.net_.module_, "_orig_mod") == compile_tuned
    np.testing.assert_allclose(estimator.transform(texts), autoencoder.transform(texts), atol=1e-5)
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.predict_proba(texts), estimator.predict_proba(texts))
    np.testing.assert_array_equal(restored.predict(texts), estimator.predict(texts))


def test_grid_search_with_a_pretrained_model(pretrained, tiny, texts, labels):
    autoencoder = pretrained[0]
    vocabulary = autoencoder.tokenizer_.get_vocab()
    seen = []

    def accuracy_and_record(estimator, X, y):
        seen.append((estimator.pretrained is autoencoder, estimator.tokenizer_.get_vocab() == vocabulary,
                     estimator.transform(X).shape[1]))
        return estimator.score(X, y)

    clf = tiny_model(TextAutoencoderClassifier, tiny, pretrained=autoencoder, max_epochs=1)
    search = GridSearchCV(clf, {"reconstruction_weight": [0.0, 1.0]}, cv=2, error_score="raise",
                          scoring=accuracy_and_record).fit(texts, labels)
    assert seen == [(True, True, autoencoder.latent_dim)] * 4  # 2 candidates x 2 folds
    best = search.best_estimator_
    assert best.pretrained is autoencoder
    assert best.tokenizer_.get_vocab() == vocabulary

    # Without scoring: accuracy, as for any classifier.
    search = GridSearchCV(clf, {"reconstruction_weight": [0.5]}, cv=2, error_score="raise").fit(texts, labels)
    assert 0 <= search.best_score_ <= 1
    assert_pretrained_unchanged(pretrained, texts)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_bad_pretrained_raises(cls, tiny, texts, labels):
    y = targets_for(cls, labels)
    with pytest.raises(NotFittedError, match=r"pretrained must be a fitted TextAutoencoder.*fit\(texts\)"):
        tiny_model(cls, tiny, pretrained=tiny()).fit(texts, y)
    for wrong in (LogisticRegression(), "model.joblib", tiny_model(TextAutoencoderClassifier, tiny)):
        with pytest.raises(InvalidParameterError, match="'pretrained' parameter"):
            tiny_model(cls, tiny, pretrained=wrong).fit(texts, y)


# --------------------------------------------------------------------------- outlier scoring

def test_score_samples_ranks_in_domain_texts_above_others(tiny, texts):
    # An autoencoder of 15 cooking texts finds the 5 held-out cooking texts more typical (a higher mean
    # per-token log-likelihood) than computing texts, and far more typical than random letters.
    # Measured with random_state 0-2: held-out cooking about -3.9, computing about -4.0, random -4.7.
    cooking, computing = texts[:N_COOKING], texts[N_COOKING:]
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz     ")
    random_texts = ["".join(rng.choice(letters, size=50)) for _ in range(10)]

    autoencoder = tiny(max_epochs=40, lr=1e-2).fit(cooking[:15])
    held_out, other_topic, noise = (autoencoder.score_samples(X) for X in (cooking[15:], computing, random_texts))
    assert all(scores.shape == (len(X),) and (scores < 0).all()
               for scores, X in ((held_out, cooking[15:]), (other_topic, computing), (noise, random_texts)))
    assert held_out.mean() > other_topic.mean() + 0.05
    assert held_out.mean() > noise.mean() + 0.3
    # score is the mean over all tokens, score_samples the mean within each text.
    assert autoencoder.score(computing) < autoencoder.score(cooking[15:])


def test_missing_values_in_a_pandas_string_series_are_unlabelled(tiny, corpus):
    # pandas >= 3 stores None in a Series of strings as NaN (and a "string" Series uses pd.NA):
    # either way the user wrote "no label", which must not be an error.
    from conftest import LABELS

    texts = list(corpus)
    names = ["cooking" if label == 0 else "computing" for label in LABELS]
    for series in (pd.Series([None if i % 3 == 0 else n for i, n in enumerate(names)]),
                   pd.Series([pd.NA if i % 3 == 0 else n for i, n in enumerate(names)], dtype="string")):
        clf = tiny_model(TextAutoencoderClassifier, tiny).fit(texts, series)
        assert list(clf.classes_) == ["computing", "cooking"]
        assert clf.n_labelled_ == sum(1 for i in range(len(names)) if i % 3)


def test_pretrained_parameters_are_not_settable_through_the_classifier(tiny, corpus):
    # get_params(deep=True) would offer pretrained__lr, and set_params would then change the user's
    # own fitted model: the pretrained model is read-only from here.
    pretrained = tiny().fit(list(corpus))
    clf = tiny_model(TextAutoencoderClassifier, tiny, pretrained=pretrained)
    assert not any(name.startswith("pretrained__") for name in clf.get_params(deep=True))
    with pytest.raises(ValueError, match="pretrained__lr"):
        clf.set_params(pretrained__lr=0.5)
    assert pretrained.lr != 0.5


def test_inference_batch_size_changes_only_the_batching(fitted, texts, monkeypatch):
    outputs = {}
    for size in (1, 7, 256):
        estimator = copy.deepcopy(fitted).set_params(inference_batch_size=size)  # the fixture stays as it is
        module, batches = estimator.net_.module_, []

        def predict(input_ids, lengths):
            batches.append(len(input_ids))
            return type(module).predict(module, input_ids, lengths)

        monkeypatch.setattr(module, "predict", predict)
        outputs[size] = head_outputs(estimator, texts), estimator.predict(texts), estimator.transform(texts)
        assert batches == 2 * [min(size, len(texts) - start) for start in range(0, len(texts), size)]
    for size in (1, 7):
        for got, expected in zip(outputs[size], outputs[256]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_three_signatures_agree():
    """The supervised estimators take every TextAutoencoder parameter, with the same default and in the
    same order, and add only their own."""
    import inspect

    base = list(inspect.signature(TextAutoencoder.__init__).parameters.values())
    for cls, own in [(TextAutoencoderClassifier, ["reconstruction_weight", "class_weight", "pretrained"]),
                     (TextAutoencoderRegressor, ["reconstruction_weight", "pretrained"])]:
        parameters = list(inspect.signature(cls.__init__).parameters.values())
        shared = [p for p in parameters if p.name not in own]
        assert [(p.name, p.default, p.kind) for p in shared] == [(p.name, p.default, p.kind) for p in base], cls
        assert sorted(p.name for p in parameters if p.name in own) == sorted(own)
