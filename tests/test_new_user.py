"""What a new user meets first: ``sktextae --help`` without importing torch, and the package's names
imported when first used."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

import sktextae
from sktextae import cli, registry
from conftest import LABELS, TEXTS, TINY_PARAMS

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
