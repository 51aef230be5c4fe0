"""Run the demo (``sktextae demo``) and save its figures and its full output.

    python benchmarks/bench_demo.py [--architecture gru] [--max-epochs 15]
"""

import argparse

import _results
from sktextae.demo import run_demo


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="gru")
    parser.add_argument("--max-epochs", type=int, default=15)
    args = parser.parse_args()
    lines = []
    figures = run_demo(architecture=args.architecture, max_epochs=args.max_epochs, out=lines.append)
    (_results.RESULTS / "demo_output.txt").write_text("\n".join(lines) + "\n")
    row = _results.stamp({"benchmark": "demo", "method": f"sktextae-{args.architecture}",
                          "max_epochs": args.max_epochs, **figures})
    _results.write("demo", [row], ["method", "max_epochs", "probe_accuracy", "chance_accuracy",
                                   "train_token_accuracy", "train_exact_match", "test_token_accuracy",
                                   "fit_seconds", "device"], title="The demo's figures")


if __name__ == "__main__":
    main()
