"""Tests for sktextae.datasets.

The first call parses the interpreter's standard library (a couple of
seconds); later calls with the same word range hit the cache.
"""

import textwrap

import numpy as np
import pytest

from sktextae import datasets
from sktextae.datasets import load_stdlib_docstrings


@pytest.fixture
def fake_stdlib(tmp_path, monkeypatch):
    """Point the loader at a small, hand-made standard library directory."""

    def write(rel_path, source):
        path = tmp_path / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")

    monkeypatch.setattr(datasets, "_stdlib_dir", lambda: str(tmp_path))
    return write


def test_defaults_give_a_large_labelled_corpus():
    corpus = load_stdlib_docstrings()

    assert set(corpus) >= {"data", "target", "target_names", "DESCR"}
    assert len(corpus.data) >= 1_000
    assert len(corpus.target_names) >= 10
    assert isinstance(corpus.data, list)
    assert isinstance(corpus.target_names, list)
    assert isinstance(corpus.DESCR, str) and corpus.DESCR
    # Modules whose documentation is distinctive enough for the demo's classifier.
    assert {"asyncio", "email", "unittest"} <= set(corpus.target_names)
    # Skipped folders and private modules never become labels.
    for name in corpus.target_names:
        assert not name.startswith("_")
        assert name not in {"test", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip"}


def test_labels_are_contiguous_and_match_target_names():
    corpus = load_stdlib_docstrings()

    assert isinstance(corpus.target, np.ndarray)
    assert np.issubdtype(corpus.target.dtype, np.integer)
    assert corpus.target.shape == (len(corpus.data),)
    assert sorted(set(corpus.target.tolist())) == list(range(len(corpus.target_names)))
    assert corpus.target_names == sorted(set(corpus.target_names))


@pytest.mark.parametrize(("min_words", "max_words"), [(4, 60), (8, 20)])
def test_texts_are_single_line_prose_within_the_word_range(min_words, max_words):
    corpus = load_stdlib_docstrings(min_words=min_words, max_words=max_words)

    for text in corpus.data:
        assert isinstance(text, str) and text
        assert "\n" not in text
        assert text == " ".join(text.split())
        assert min_words <= len(text.split()) <= max_words
        assert text[0].isalpha()
        assert ">>>" not in text
    assert len(set(corpus.data)) == len(corpus.data)


def test_each_call_returns_fresh_lists():
    first = load_stdlib_docstrings()
    first.data.clear()
    first.target_names.clear()

    second = load_stdlib_docstrings()
    assert second.data
    assert second.target_names


def test_min_texts_per_label_filters_labels():
    default = load_stdlib_docstrings()
    strict = load_stdlib_docstrings(min_texts_per_label=100)

    counts = np.bincount(strict.target)
    assert counts.min() >= 100
    assert set(strict.target_names) < set(default.target_names)
    # A kept label keeps all of its texts.
    name = strict.target_names[0]
    default_texts = [
        text
        for text, label in zip(default.data, default.target)
        if default.target_names[label] == name
    ]
    strict_texts = [
        text
        for text, label in zip(strict.data, strict.target)
        if strict.target_names[label] == name
    ]
    assert strict_texts == default_texts


def test_max_texts_gives_a_deterministic_stratified_sample():
    full = load_stdlib_docstrings()
    sample = load_stdlib_docstrings(max_texts=500, random_state=0)
    again = load_stdlib_docstrings(max_texts=500, random_state=0)
    other = load_stdlib_docstrings(max_texts=500, random_state=1)

    assert len(sample.data) == 500
    assert sample.target.shape == (500,)
    assert sample.data == again.data
    np.testing.assert_array_equal(sample.target, again.target)
    assert sample.data != other.data

    # Same labels as the full corpus, each represented, in proportion.
    assert sample.target_names == full.target_names
    assert np.bincount(sample.target, minlength=len(full.target_names)).min() >= 1
    full_share = np.bincount(full.target) / len(full.data)
    sample_share = np.bincount(sample.target) / len(sample.data)
    np.testing.assert_allclose(sample_share, full_share, atol=0.01)

    # A subset of the full corpus, in the same order, with the same labels.
    position = {text: index for index, text in enumerate(full.data)}
    indices = [position[text] for text in sample.data]
    assert indices == sorted(indices)
    np.testing.assert_array_equal(full.target[indices], sample.target)


def test_max_texts_at_least_the_corpus_size_returns_everything():
    full = load_stdlib_docstrings()
    capped = load_stdlib_docstrings(max_texts=len(full.data) + 10)

    assert capped.data == full.data
    np.testing.assert_array_equal(capped.target, full.target)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_texts": 0}, r"max_texts must be >= 1, got max_texts=0"),
        ({"max_texts": 10.5}, r"max_texts must be an int or None, got 10\.5"),
        ({"max_texts": True}, r"max_texts must be an int or None, got True"),
        ({"min_words": 0}, r"min_words must be >= 1, got min_words=0"),
        ({"min_words": "4"}, r"min_words must be an int, got '4'"),
        ({"max_words": -1}, r"max_words must be >= 1, got max_words=-1"),
        ({"min_words": 10, "max_words": 5}, r"max_words\(5\) must be >= min_words\(10\)"),
        ({"min_texts_per_label": 0}, r"min_texts_per_label must be >= 1"),
        ({"random_state": "seed"}, r"seed"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_stdlib_docstrings(**kwargs)


def test_min_texts_per_label_too_high_raises_value_error():
    with pytest.raises(ValueError, match=r"No module has min_texts_per_label\(1000000\)"):
        load_stdlib_docstrings(min_texts_per_label=1_000_000)


def test_max_texts_below_the_number_of_labels_raises_value_error():
    n_labels = len(load_stdlib_docstrings().target_names)
    match = rf"max_texts\(2\) must be >= the number of labels \({n_labels}\)"
    with pytest.raises(ValueError, match=match):
        load_stdlib_docstrings(max_texts=2)


def test_missing_sources_raise_runtime_error(fake_stdlib):
    # Only a file that does not parse: no source the loader can use.
    fake_stdlib("broken.py", "def broken(:\n")
    with pytest.raises(RuntimeError, match="standard library sources were not found at"):
        load_stdlib_docstrings()


def test_walk_labels_filters_and_deduplicates(fake_stdlib):
    fake_stdlib(
        "email/mime/text.py",
        '''
        """Class representing text MIME documents.

        A second paragraph that must not appear.
        """

        class MIMEText:
            """Create a text MIME
            document from a string."""

            def method(self):
                """>>> doctest lines are code, not prose"""

            def signature(self):
                """(a, b) -> c describes a call signature."""
        ''',
    )
    fake_stdlib(
        "email/__init__.py",
        '''
        """A package for parsing, handling, and generating email messages."""

        if True:
            def nested():
                """Functions defined inside blocks are found too."""
        ''',
    )
    fake_stdlib(
        "json/__init__.py",
        '''
        """JSON encoder and decoder for Python data."""

        def dumps(obj):
            """Create a text MIME document from a string."""

        def short():
            """Too short."""
        ''',
    )
    fake_stdlib("os.py", '"""OS routines for NT or Posix depending on the system."""\n')
    fake_stdlib("_private.py", '"""A private module that is never a label."""\n')
    fake_stdlib("test/test_os.py", '"""Tests of the os module are skipped."""\n')
    fake_stdlib("email/tests/test_x.py", '"""Nested test folders are skipped too."""\n')
    fake_stdlib("tkinter/__init__.py", '"""Wrapper functions for Tcl and Tk widgets."""\n')
    fake_stdlib("site-packages/pkg.py", '"""Third-party code is never part of it."""\n')
    fake_stdlib("config-3.11/python-config.py", '"""Not an importable module name at all."""\n')
    fake_stdlib("broken.py", "def broken(:\n")

    corpus = load_stdlib_docstrings(min_texts_per_label=1)

    assert corpus.target_names == ["email", "json", "os"]
    labelled = [
        (corpus.target_names[label], text) for text, label in zip(corpus.data, corpus.target)
    ]
    # Sorted path order: email/__init__.py before email/mime/text.py; the
    # duplicate in json keeps its first occurrence, in email.
    assert labelled == [
        ("email", "A package for parsing, handling, and generating email messages."),
        ("email", "Functions defined inside blocks are found too."),
        ("email", "Class representing text MIME documents."),
        ("email", "Create a text MIME document from a string."),
        ("json", "JSON encoder and decoder for Python data."),
        ("os", "OS routines for NT or Posix depending on the system."),
    ]

    strict = load_stdlib_docstrings(min_texts_per_label=2)
    assert strict.target_names == ["email"]
    assert strict.target.tolist() == [0, 0, 0, 0]
