"""benchmarks/gpu_check.sh and gpu_wheels.sh: they parse, and the check refuses bad arguments before it runs anything.

The check itself (minutes, on a GPU) is run by hand: ``bash benchmarks/gpu_check.sh OUTPUT_DIR --dry-run``.
"""

import pathlib
import shutil
import subprocess

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"
CHECK, WHEELS = BENCHMARKS / "gpu_check.sh", BENCHMARKS / "gpu_wheels.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def bash(*args, cwd=None):
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, timeout=30, cwd=cwd)


@pytest.mark.parametrize("script", [CHECK, WHEELS], ids=lambda path: path.name)
def test_script_parses(script):
    done = bash("-n", script)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", [CHECK, WHEELS], ids=lambda path: path.name)
def test_help_prints_the_header(script):
    done = bash(script, "--help")
    assert done.returncode == 0
    assert "usage" not in done.stderr and "set -" not in done.stdout
    assert done.stdout.lstrip().startswith(("The CUDA tests", "Prepare what"))


@pytest.mark.parametrize("args", [[], ["--dry-run"], ["out", "more"], ["out", "--bogus"], ["out", "--data"]],
                         ids=["no output dir", "only --dry-run", "two output dirs", "unknown option", "--data alone"])
def test_check_rejects_bad_arguments(args, tmp_path):
    done = bash(CHECK, *args, cwd=tmp_path)
    assert done.returncode == 2
    assert "usage: bash benchmarks/gpu_check.sh OUTPUT_DIR" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing made, not even OUTPUT_DIR
