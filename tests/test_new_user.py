"""What a new user meets first: ``sktextae --help`` without importing torch, and the package's names
imported when first used."""

import importlib.metadata
import os
import subprocess
import sys
import warnings

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import sktextae
from sktextae import cli, registry
from conftest import LABELS, TEXTS, TINY_PARAMS

TINY_ARGS = [arg for name, value in TINY_PARAMS.items() if name != "max_epochs"
             for arg in ("--param", f"{name}={value!r}")] + ["--param", "max_epochs=1"]
HEAVY = ("torch", "skorch", "transformers", "sklearn", "sktextae.estimator", "sktextae.nn", "sktextae.demo")


def python(code, *args):
    """Run ``code`` in a fresh interpreter; its standard output, stripped."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(__file__), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# Calls the command line's main with the arguments after the code, and prints the exit status, then the
# heavy modules that were imported.
MAIN = f"""
import sys
from sktextae.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
print(code)
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["fit", "--help"], 0), (["demo", "--help"], 0),
                                        (["frobnicate"], 2), (["fit", "texts.txt"], 2), ([], 2)],
                         ids=["help", "fit help", "demo help", "unknown command", "missing -o", "no command"])
def test_help_and_argument_errors_import_no_torch(args, code):
    assert python(MAIN, *args).splitlines()[-2:] == [str(code), "[]"]


def test_python_m_sktextae_help_imports_no_torch():
    out = python(f"""
import runpy, sys
sys.argv = ["sktextae", "--help"]
try:
    runpy.run_module("sktextae", run_name="__main__")
except SystemExit as exit_:
    print(exit_.code)
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
""")
    assert "usage: sktextae" in out and out.splitlines()[-2:] == ["0", "[]"]


def test_the_console_script_is_the_light_main():
    [script] = [entry for entry in importlib.metadata.entry_points(group="console_scripts") if entry.name == "sktextae"]
    assert script.value == "sktextae.cli:main"
    assert python(f"""
import importlib.metadata, sys
[script] = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "sktextae"]
script.load()
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
""") == "[]"


def test_the_parsers_choices_are_the_packages():
    from sktextae.nn import ARCHITECTURES

    assert sktextae.TextAutoencoder  # imports the estimators, which registers them
    assert cli.ESTIMATORS == tuple(registry.ESTIMATORS)
    assert cli.ARCHITECTURES == tuple(ARCHITECTURES)


# --------------------------------------------------------------------------- the package's names

def test_importing_the_package_imports_no_torch_until_an_estimator_is_used():
    assert python(f"""
import sys
import sktextae
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
print(sktextae.TruncationWarning.__name__, sktextae.__version__ == sktextae._version.__version__)
print(sktextae.TextAutoencoderRegressor.__module__, "torch" in sys.modules)
""").splitlines() == ["[]", "TruncationWarning True", "sktextae.supervised True"]


def test_the_public_names_are_the_classes():
    from sktextae import estimator, supervised

    namespace = {}
    exec("from sktextae import *", namespace)
    assert set(sktextae.__all__) <= set(namespace) and set(sktextae.__all__) <= set(dir(sktextae))
    assert namespace["TextAutoencoder"] is sktextae.TextAutoencoder is estimator.TextAutoencoder
    assert namespace["TextAutoencoderClassifier"] is supervised.TextAutoencoderClassifier
    with pytest.raises(AttributeError, match="no attribute 'TextAutoEncoder'"):
        sktextae.TextAutoEncoder  # noqa: B018


def test_load_in_a_fresh_interpreter_reads_any_class(tmp_path):
    # Nothing but `import sktextae` before load: load itself registers the classes a folder may hold.
    classifier = sktextae.TextAutoencoderClassifier(**{**TINY_PARAMS, "max_epochs": 1}).fit(list(TEXTS), list(LABELS))
    classifier.save(tmp_path / "classifier")
    out = python("import sys, sktextae; print(type(sktextae.load(sys.argv[1], device='cpu')).__name__)",
                 tmp_path / "classifier")
    assert out == "TextAutoencoderClassifier"


# --------------------------------------------------------------------------- truncation

def truncation_warnings(record):
    return [str(warning.message) for warning in record if issubclass(warning.category, sktextae.TruncationWarning)]


def test_the_truncation_warning_names_the_fix_and_how_to_hide_it(tiny, texts):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tiny(max_length=4, max_epochs=1).fit_transform(texts)
    [message] = truncation_warnings(record)  # one for fit_transform, not one for fit and one for transform
    assert message.startswith(f"{len(texts)} of {len(texts)} texts were longer than max_length=4 tokens and were "
                              f"truncated; fit with a larger max_length to keep them whole")
    assert "warnings.filterwarnings('ignore', category=sktextae.TruncationWarning)" in message


def test_filterwarnings_ignore_silences_truncation_also_in_a_search(tiny, texts, labels):
    pipeline = Pipeline([("ae", tiny(max_length=4, max_epochs=1)), ("classifier", LogisticRegression())])
    search = GridSearchCV(pipeline, {"ae__latent_dim": [4, 8]}, cv=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=sktextae.TruncationWarning)
        search.fit(texts, labels)  # scikit-learn's parallel loop sets the filters again for each fit and score
        estimator = tiny(max_length=4, max_epochs=1).fit(texts)
        estimator.transform(texts)
        estimator.score_samples(texts)
    assert truncation_warnings(record) == []
    with pytest.warns(sktextae.TruncationWarning):  # and without the filter, it warns
        estimator.transform(texts)


def test_the_command_line_shows_truncation_as_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "sktextae", "fit", "texts.txt", "-o", "model",
                           "--param", "max_length=4", *TINY_ARGS], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line.lower()]
    assert warned == [f"sktextae fit: warning: {len(TEXTS)} of {len(TEXTS)} texts were longer than max_length=4 "
                      f"tokens and were truncated; pass --param max_length=N with a larger N to keep them whole."]
    assert "TruncationWarning" not in done.stderr and ".py:" not in done.stderr  # no file, line or source

    monkeypatch.chdir(tmp_path)
    shown = warnings.showwarning
    for command, verb in (("encode", "encode"), ("score", "score")):
        assert cli.main([command, "model", "texts.txt", "-o", f"{command}.npy", "--device", "cpu"]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        assert warned == [f"sktextae {command}: warning: {len(TEXTS)} of {len(TEXTS)} texts were longer than "
                          f"max_length=4 tokens and were truncated; fit a model with a larger --param max_length "
                          f"to {verb} them whole."]
    assert warnings.showwarning is shown  # Python's own printer is back after the command


def test_the_command_line_shows_other_warnings_as_one_line_each(capsys):
    show = cli._warning_printer("encode")
    show(UserWarning("first line\n  second line"), UserWarning, "somewhere.py", 3)
    show(UserWarning("first line\n  second line"), UserWarning, "somewhere.py", 3)  # the same line: once
    show(sktextae.ModelVersionWarning("written by sktextae 0.1"), sktextae.ModelVersionWarning, "x.py", 1)
    assert capsys.readouterr().err.splitlines() == ["sktextae encode: warning: UserWarning: first line second line",
                                                    "sktextae encode: warning: written by sktextae 0.1"]


# --------------------------------------------------------------------------- the demo's output

def test_the_demo_writes_no_escape_codes_into_redirected_output():
    from sktextae import demo

    done = subprocess.run([sys.executable, "-m", "sktextae", "demo", "--max-texts", "300", "--max-epochs", "1",
                           "--latent-dim", "8"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "train_loss" in done.stdout and "Reconstruction of held-out texts" in done.stdout  # the table is there
    assert demo.MEASURES_NOTE[True] in done.stdout.splitlines()  # what token accuracy and exact match are
    for stream in (done.stdout, done.stderr):
        assert "\x1b[" not in stream and "\r" not in stream  # no colour, no progress bar redrawn in place


class Terminal:
    def isatty(self):
        return True

    def write(self, text):
        pass

    def flush(self):
        pass


def test_the_demo_colours_and_shows_progress_only_on_a_terminal(monkeypatch):
    from sktextae import demo
    from sktextae.callbacks import SyncFreeProgressBar

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", Terminal())
    [(_, table), (_, bar)] = demo.training_display(print)
    assert table.colour and isinstance(bar, SyncFreeProgressBar)
    [(_, table), _] = demo.training_display([].append)  # out is not print: not the terminal
    assert not table.colour
    monkeypatch.setenv("NO_COLOR", "1")
    [(_, table), _] = demo.training_display(print)
    assert not table.colour

    monkeypatch.setattr(sys, "stdout", None)  # pythonw: no streams
    monkeypatch.setattr(sys, "stderr", None)
    [(_, table)] = demo.training_display(print)
    assert not table.colour


def test_the_epoch_table_colours_the_best_values_only_with_colour():
    from sktextae.demo import EpochTable

    row = {"epoch": 1, "train_loss": 1.5, "train_loss_best": True}
    assert "\x1b[" in EpochTable(colour=True).initialize().format_row(row, "train_loss", color="\x1b[36m")
    assert EpochTable(colour=False).initialize().format_row(row, "train_loss", color="\x1b[36m") == "1.5000"


def test_exact_match_above_token_accuracy_is_what_the_demo_says():
    from sktextae.demo import MEASURES_NOTE
    from sktextae.metrics import exact_match_rate, token_accuracy

    # Two short texts rebuilt exactly, a long one shifted by a token: few tokens right, most texts right.
    references = [[5], [6], [7, 8, 9, 10, 11, 12]]
    hypotheses = [[5], [6], [8, 9, 10, 11, 12]]
    assert token_accuracy(references, hypotheses) == 2 / 8
    assert exact_match_rate(references, hypotheses) == 2 / 3
    assert "at their own position" in MEASURES_NOTE[True] and "long texts weigh more" in MEASURES_NOTE[True]


def test_a_demo_too_small_for_the_corpus_is_one_line_not_a_traceback(capsys):
    from sktextae.datasets import load_stdlib_docstrings

    # One text per module: too few to hold out a fifth of them and keep every module on both sides. The
    # check comes after reading the corpus and before training anything.
    n_modules = len(load_stdlib_docstrings().target_names)
    assert cli.main(["demo", "--max-texts", str(n_modules)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sktextae demo: error: max_texts={n_modules} gives {n_modules} texts, too few")
    assert f"max_texts >= {5 * n_modules}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
