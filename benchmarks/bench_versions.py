"""Fit and transform speed of one commit of the package beside another, side by side in one run.

A restructuring is meant to change no speed. This checks it: ``git worktree`` checks both commits out
into temporary folders (``--this`` defaults to HEAD, so that edits made while it runs change nothing),
then, for each method and each repeat, ``bench_speed.py``'s own measuring
process (``--one``) runs once with this tree's package and once with the other's, alternating (the
order flips every repeat) so that the machine's drift hits both alike. Each tree's process imports
its own package (``PYTHONPATH``) and runs its own ``bench_speed.py``. The summary gives, per method,
the median over the repeats of fit texts/s per epoch and transform texts/s for each tree, and their
ratio (this tree over the other): about 1.0 is no change.

    python benchmarks/bench_versions.py --against <commit> [--this HEAD] [--methods sktextae-bow,sktextae-gru]
        [--n-texts 2000] [--repeats 3] [--threads 1] [--data ../shared/data] [--output versions_cpu]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

import _data
import _results

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULT = "RESULT "


def measure(tree, method, args):
    """One measuring process of ``tree``'s bench_speed.py on ``tree``'s package: its result row."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(tree / "benchmarks" / "bench_speed.py"), "--one", method, "--n-texts",
               str(args.n_texts), "--data", args.data, "--dataset", args.dataset, "--max-epochs", str(args.max_epochs),
               "--batch-size", str(args.batch_size), "--inference-batch-size", str(args.inference_batch_size),
               "--device", "cpu"]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, cwd=tree, check=True)
    return json.loads([line for line in done.stdout.splitlines() if line.startswith(RESULT)][-1][len(RESULT):])


def package_of(tree):
    """Where ``tree``'s process imports sktextae from: the check that each run measures its own tree."""
    code = "import sktextae, pathlib; print(pathlib.Path(sktextae.__file__).resolve().parent.parent)"
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True, cwd=tree,
                         env={**os.environ, "PYTHONPATH": str(tree)}).stdout.strip()
    return pathlib.Path(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the commit to compare with")
    parser.add_argument("--this", default="HEAD", help="the commit measured against it (default HEAD)")
    parser.add_argument("--methods", default="sktextae-bow,sktextae-gru,sktextae-transformer")
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--inference-batch-size", type=int, default=512)
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--output", default="versions_cpu")
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, check=True).stdout.strip()
    here = subprocess.run(["git", "rev-parse", "--short", args.this], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        trees = {"this": pathlib.Path(folder) / "this", "other": pathlib.Path(folder) / "other"}
        for name, revision in (("this", here), ("other", commit)):
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[name]), revision], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        try:
            for name, tree in trees.items():
                if package_of(tree) != tree.resolve():
                    raise SystemExit(f"the {name} tree's process imports sktextae from {package_of(tree)}, not {tree}")
            runs = {(name, method): [] for name in trees for method in args.methods.split(",")}
            for repeat in range(args.repeats):
                for method in args.methods.split(","):
                    order = ["this", "other"] if repeat % 2 == 0 else ["other", "this"]
                    for name in order:
                        row = measure(trees[name], method, args)
                        runs[name, method].append(row)
                        print(f"repeat {repeat + 1}, {method}, {name} tree: fit {row['fit_texts_per_s']:.0f} "
                              f"texts/s/epoch, transform {row['transform_texts_per_s']:.0f} texts/s", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    rows = []
    for method in args.methods.split(","):
        row = {"method": method, "n_texts": args.n_texts, "repeats": args.repeats, "threads": args.threads}
        for key, label in (("fit_texts_per_s", "fit"), ("transform_texts_per_s", "transform")):
            this = statistics.median(r[key] for r in runs["this", method])
            other = statistics.median(r[key] for r in runs["other", method])
            row.update({f"{label}_this": round(this, 1), f"{label}_other": round(other, 1),
                        f"{label}_ratio": round(this / other, 3)})
        rows.append(_results.stamp({"benchmark": "versions", "this": here,
                                    "other": commit, "device": _results.device_name("cpu"), **row}))
    columns = ["method", "n_texts", "fit_this", "fit_other", "fit_ratio", "transform_this", "transform_other",
               "transform_ratio"]
    _results.write(args.output, rows, columns, title=f"Speed of {here} beside {commit}, side by side",
                   notes=[f"Median over {args.repeats} alternating repeats, one process each, {args.threads} "
                          f"thread(s), on the CPU; fit in texts/s per epoch, transform in texts/s; ratio = this "
                          f"{here} over {commit}."])


if __name__ == "__main__":
    main()
