"""MiniLM's tokenizer as the package calls it, step by step, beside model2vec's copy of it: texts per second.

On each dataset's test texts, one thread (``RAYON_NUM_THREADS=1``), ids only, no special tokens added:

- ``as read``: all-MiniLM-L6-v2's fast tokenizer as ``transformers`` reads it, without its truncation and
  padding (its template post-processor in place, which runs on every text even when it adds nothing);
- ``no template``: the same without the post-processor, as ``sktextae.pretrained`` now reads it;
- ``twin``: that, with the plain ASCII texts given to its twin (``sktextae.ascii_twin.encode_batch``), as
  ``sktextae.tokenization.encode`` calls it;
- ``model2vec``: the tokenizer of the static model distilled from MiniLM (``--model2vec``, see
  ``bench_static.py``; skipped when absent), whose vocabulary is pruned.

Each is timed in 5 interleaved rounds of at least 0.5 s (the median), and the ids of ``twin`` are checked
against ``no template``'s.

    python benchmarks/bench_tokenizer.py [--data ../shared/data] [--model2vec /tmp/model2vec/64]
        [--output tokenizer_speed_cpu]
"""

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # read once, at the tokenizers' first use

import argparse  # noqa: E402
import copy  # noqa: E402
import pathlib  # noqa: E402

import _data  # noqa: E402
import _results  # noqa: E402
from bench_static import MINILM, interleaved_speeds  # noqa: E402

from sktextae import ascii_twin, pretrained  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,sst2,ag_news,20newsgroups")
    parser.add_argument("--model2vec", default=str(pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "model2vec" / "64"))
    parser.add_argument("--output", default="tokenizer_speed_cpu")
    args = parser.parse_args()
    import transformers

    from_transformers = transformers.AutoTokenizer.from_pretrained(str(pretrained.resolve_folder(MINILM))).backend_tokenizer
    as_read = copy.deepcopy(from_transformers)
    as_read.no_truncation()
    as_read.no_padding()  # as sktextae.pretrained reads it: neither is what the package asks for
    no_template = copy.deepcopy(as_read)
    no_template.post_processor = None
    tokenizers = {"as read": as_read, "no template": no_template}
    folder = pathlib.Path(args.model2vec)
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizers["model2vec"] = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for tokenizer in tokenizers.values():
        tokenizer.encode_special_tokens = True  # as sktextae.tokenization.encode sets it
    calls = {name: (lambda texts, t=tokenizer: t.encode_batch_fast(texts, add_special_tokens=False))
             for name, tokenizer in tokenizers.items()}
    calls["twin"] = lambda texts: ascii_twin.encode_batch(no_template, texts)
    rows = []
    for dataset in args.datasets.split(","):
        texts, _ = _data.load_sample(args.data, dataset, "test")
        same = ([e.ids for e in calls["twin"](texts)] == [e.ids for e in calls["no template"](texts)])
        plain = sum(map(ascii_twin.twin(no_template)[1], texts))
        speeds = interleaved_speeds(calls, texts)
        for name, speed in speeds.items():
            rows.append(_results.stamp({"benchmark": "tokenizer", "dataset": dataset, "tokenizer": name,
                                        "texts": len(texts), "plain_ascii": plain, "same_ids": same if name == "twin" else "",
                                        "texts_per_second": speed, "device": _results.device_name("cpu")}))
        print(f"{dataset}: {speeds}; twin's ids the same: {same}", flush=True)
    _results.write(args.output, rows, ["dataset", "tokenizer", "texts", "plain_ascii", "same_ids", "texts_per_second"],
                   title="MiniLM's tokenizer, step by step, beside model2vec's: texts per second on one CPU thread")


if __name__ == "__main__":
    main()
