"""The ``sktextae`` command line: ``sktextae demo``."""

import argparse

from .nn import ARCHITECTURES


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sktextae", description="Text autoencoders for scikit-learn.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train on the standard library's docstrings and show the results")
    demo.add_argument("--architecture", choices=ARCHITECTURES, default="gru",
                      help="default gru: on a CPU it learns fastest")
    demo.add_argument("--latent-dim", type=int, default=64)
    demo.add_argument("--max-epochs", type=int, default=15)
    demo.add_argument("--max-texts", type=int, default=3000, help="texts drawn from the corpus (default 3000)")
    demo.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo  # the demo's imports stay out of `sktextae --help`

        run_demo(architecture=args.architecture, latent_dim=args.latent_dim, max_epochs=args.max_epochs,
                 max_texts=args.max_texts, random_state=args.random_state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
