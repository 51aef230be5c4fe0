"""Built-in text corpora that need no download and no extra package.

The only corpus so far is :func:`load_stdlib_docstrings`: the first paragraph
of the docstrings of the Python standard library, labelled by the top-level
module they come from. It is real English prose about distinct topics
(``email`` vs ``asyncio`` vs ``unittest``), so a text autoencoder has
something to reconstruct and a classifier on its latent vectors has
something to learn, on any machine, offline.
"""

import ast
import functools
import os
import re
import sys
import sysconfig
import warnings
from numbers import Integral

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_stdlib_docstrings"]

# Folders never walked: third-party code, test suites (code-heavy, and their
# docstrings describe tests rather than the library), and GUI or demo packages
# whose docstrings are few and mostly about widgets.
_SKIPPED_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "__pycache__",
        "idlelib",
        "lib2to3",
        "tkinter",
        "turtledemo",
        "ensurepip",
    }
)

# A blank line (possibly holding spaces) ends the first paragraph.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

_DOCSTRING_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

# The fields of statements (and of ``except`` and ``case`` clauses) that hold
# nested statements, in source order.
_BLOCK_FIELDS = ("body", "handlers", "cases", "orelse", "finalbody")


def _stdlib_dir():
    """Return the directory holding the running interpreter's stdlib sources.

    A function rather than a constant so that tests can point the loader
    at a directory without sources.
    """
    return sysconfig.get_paths()["stdlib"]


def _check_int(name, value, *, minimum, allow_none=False):
    """Raise ValueError unless ``value`` is an int >= ``minimum`` (or None)."""
    if value is None and allow_none:
        return
    # bool is an Integral, but ``max_texts=True`` is certainly a mistake.
    if not isinstance(value, Integral) or isinstance(value, bool):
        expected = "an int or None" if allow_none else "an int"
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}.")


def _skip_dir(name):
    return name in _SKIPPED_DIRS or name.startswith("test")


def _iter_source_files(stdlib_dir):
    """Yield ``(label, path)`` for each public stdlib source file, sorted by path.

    The label is the top-level module or package name. Private top-level
    modules (``_pydecimal``) and entries that are not importable names
    (``config-3.11-x86_64-linux-gnu``, ``lib-dynload``) are left out.
    """
    found = []
    for root, dirs, files in os.walk(stdlib_dir):
        # Pruning in place stops os.walk from descending into skipped folders.
        dirs[:] = [d for d in dirs if not _skip_dir(d)]
        rel_root = os.path.relpath(root, stdlib_dir)
        for file_name in files:
            if not file_name.endswith(".py"):
                continue
            rel_path = os.path.normpath(os.path.join(rel_root, file_name))
            top_level = rel_path.split(os.sep)[0]
            label = top_level[: -len(".py")] if top_level.endswith(".py") else top_level
            if label.startswith("_") or not label.isidentifier():
                continue
            found.append((rel_path, label))
    for rel_path, label in sorted(found):
        yield label, os.path.join(stdlib_dir, rel_path)


def _iter_docstrings(tree):
    """Yield the docstrings of a module and its classes and functions in source order."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _DOCSTRING_NODES):
            docstring = ast.get_docstring(node, clean=True)
            if docstring:
                yield docstring
        # Only statement blocks can hold a class or function definition, so
        # expressions are never entered: visiting every node of the tree
        # would take longer than parsing it.
        children = []
        for field in _BLOCK_FIELDS:
            children.extend(getattr(node, field, ()))
        # Reversed so that popping from the stack visits children in source order.
        stack.extend(reversed(children))


def _first_paragraph(docstring):
    """Return the docstring's first paragraph on one line, whitespace collapsed."""
    return " ".join(_PARAGRAPH_BREAK.split(docstring.strip(), maxsplit=1)[0].split())


def _looks_like_prose(text):
    # Doctests and signatures ("(a, b) -> c", "__init__(...)") are code, not
    # English; requiring a leading letter drops most of them cheaply.
    return text[:1].isalpha() and ">>>" not in text


@functools.lru_cache(maxsize=4)
def _walk_stdlib(stdlib_dir):
    """Return ``(n_files_parsed, ((text, label, n_words), ...))`` for a stdlib directory.

    Cached because parsing the whole standard library is the slow part. The
    word range is applied by the caller, so that every word range shares
    one walk; the tuples are immutable so a caller cannot corrupt the cache.
    """
    n_parsed = 0
    seen = set()
    pairs = []
    for label, path in _iter_source_files(stdlib_dir):
        try:
            with open(path, "rb") as source_file:
                source = source_file.read()
            # Old modules contain invalid escape sequences that newer
            # interpreters warn about at parse time; they are not our concern.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=path)
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
            # Parser test fixtures and files for other Python versions: skip.
            continue
        n_parsed += 1
        for docstring in _iter_docstrings(tree):
            text = _first_paragraph(docstring)
            if not _looks_like_prose(text) or text in seen:
                continue
            seen.add(text)
            pairs.append((text, label, len(text.split())))
    return n_parsed, tuple(pairs)


def _stratified_indices(target, n_samples, n_labels, rng):
    """Return sorted indices of a stratified sample of ``n_samples`` from ``target``.

    Every label gets one text, and the rest are shared in proportion to the
    label sizes (largest-remainder rounding), so the sample is exactly
    ``n_samples`` long and no label disappears from a small sample.
    """
    counts = np.bincount(target, minlength=n_labels)
    extra = n_samples - n_labels
    # Proportional to counts - 1 so that no quota can exceed a label's size.
    shares = extra * (counts - 1) / (counts.sum() - n_labels)
    quotas = np.floor(shares).astype(int)
    leftover = extra - quotas.sum()
    # Stable sort: ties in the fractional part go to the lower label index.
    by_remainder = np.argsort(-(shares - quotas), kind="stable")
    quotas[by_remainder[:leftover]] += 1
    quotas += 1

    chosen = [
        rng.choice(np.flatnonzero(target == label), size=quota, replace=False)
        for label, quota in enumerate(quotas)
    ]
    return np.sort(np.concatenate(chosen))


def load_stdlib_docstrings(
    *,
    max_texts=None,
    min_words=4,
    max_words=60,
    min_texts_per_label=20,
    random_state=0,
):
    """Load the first paragraphs of the standard library's docstrings.

    The texts are read at run time from the running interpreter's own
    source files, so the corpus needs no download and no extra package. The
    modules are parsed with :mod:`ast`, never imported: importing some of
    them (``antigravity``, ``this``, ``turtle``) has side effects. The
    docstrings of modules, classes, functions and methods are kept; test
    suites, ``site-packages``, ``idlelib``, ``lib2to3``, ``tkinter``,
    ``turtledemo`` and ``ensurepip`` are not walked.

    Each text is the first paragraph of one docstring (up to its first blank
    line) with its whitespace collapsed to single spaces. Texts that look
    like code (containing ``>>>`` or not starting with a letter) and exact
    duplicates are dropped, keeping the first occurrence in sorted path
    order. Each text is labelled by its top-level module or package
    (``email/mime/text.py`` gives ``"email"``); private modules such as
    ``_pydecimal`` are left out.

    Parameters
    ----------
    max_texts : int or None, default=None
        If given, return a stratified random sample of this many texts
        (every label keeps at least one text, the rest are shared in
        proportion to the label sizes). If it is at least the number of
        texts available, all of them are returned. Must be at least the
        number of labels.
    min_words : int, default=4
        Texts with fewer words than this are dropped.
    max_words : int, default=60
        Texts with more words than this are dropped.
    min_texts_per_label : int, default=20
        Modules with fewer texts than this are dropped, so that every label
        has enough examples to learn from.
    random_state : int, RandomState instance or None, default=0
        Seeds the sample taken when ``max_texts`` is given. An int gives the
        same sample on every call.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : list of str
            The texts, in the order of the source files (sorted by path), so
            grouped by module: shuffle before splitting.
        target : ndarray of shape (n_texts,), dtype=int64
            The label of each text, from 0 to ``len(target_names) - 1``.
        target_names : list of str
            The module name of each label, sorted by name.
        DESCR : str
            A description of the corpus.

    Raises
    ------
    ValueError
        If an argument is invalid, or if no module keeps
        ``min_texts_per_label`` texts.
    RuntimeError
        If the interpreter's standard library sources cannot be found (for
        example, an installation that ships only compiled files).

    Notes
    -----
    The corpus depends on the Python version: texts and labels change a
    little between interpreters. The first call parses the standard library,
    which takes a few seconds; the result is cached, so later calls with any
    arguments take milliseconds.

    Examples
    --------
    >>> from sktextae.datasets import load_stdlib_docstrings
    >>> corpus = load_stdlib_docstrings(max_texts=500)
    >>> len(corpus.data)
    500
    >>> "email" in corpus.target_names
    True
    """
    _check_int("max_texts", max_texts, minimum=1, allow_none=True)
    _check_int("min_words", min_words, minimum=1)
    _check_int("max_words", max_words, minimum=1)
    _check_int("min_texts_per_label", min_texts_per_label, minimum=1)
    if max_words < min_words:
        raise ValueError(
            f"max_words({max_words}) must be >= min_words({min_words}); "
            "raise max_words or lower min_words."
        )
    # Checked before the walk so that a bad seed fails fast.
    rng = check_random_state(random_state)

    stdlib_dir = _stdlib_dir()
    n_parsed, walked = _walk_stdlib(stdlib_dir)
    if n_parsed == 0:
        raise RuntimeError(
            f"The Python standard library sources were not found at {stdlib_dir!r}: "
            "this interpreter seems to ship without its .py files, so the "
            "built-in corpus is unavailable."
        )

    pairs = [
        (text, label) for text, label, n_words in walked if min_words <= n_words <= max_words
    ]
    counts = {}
    for _, label in pairs:
        counts[label] = counts.get(label, 0) + 1
    target_names = sorted(name for name, count in counts.items() if count >= min_texts_per_label)
    if not target_names:
        largest = max(counts.values(), default=0)
        raise ValueError(
            f"No module has min_texts_per_label({min_texts_per_label}) texts with "
            f"min_words={min_words} and max_words={max_words}; the largest has "
            f"{largest}. Lower min_texts_per_label or widen the word range."
        )
    label_index = {name: index for index, name in enumerate(target_names)}
    kept = [(text, label_index[label]) for text, label in pairs if label in label_index]
    data = [text for text, _ in kept]
    target = np.array([label for _, label in kept], dtype=np.int64)

    if max_texts is not None and max_texts < len(data):
        if max_texts < len(target_names):
            raise ValueError(
                f"max_texts({max_texts}) must be >= the number of labels "
                f"({len(target_names)}) so that every label keeps a text; raise "
                "max_texts or raise min_texts_per_label to keep fewer labels."
            )
        indices = _stratified_indices(target, max_texts, len(target_names), rng)
        data = [data[index] for index in indices]
        target = target[indices]

    descr = (
        "Python standard library docstrings\n"
        "==================================\n\n"
        f"First paragraphs of {len(data)} docstrings from {len(target_names)} "
        f"top-level modules of Python {sys.version.split()[0]}, read from "
        f"{stdlib_dir}. Each text has {min_words} to {max_words} words and is "
        "labelled by the module it documents; modules with fewer than "
        f"{min_texts_per_label} texts are left out."
    )
    return Bunch(data=data, target=target, target_names=target_names, DESCR=descr)
