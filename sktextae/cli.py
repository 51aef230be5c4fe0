"""The ``sktextae`` command line: ``demo``, ``fit``, ``encode``, ``decode`` and ``score``.

Texts are read from ``.txt`` (one text a line), ``.csv``, ``.jsonl`` or ``.parquet`` files, or from
standard input (``-``, one text a line). Lines end at ``\n`` (or ``\r\n``) only: a form feed, U+2028
or another character that Python's ``str.splitlines`` also breaks at stays inside its text. Progress
and warnings (one line each) go to standard error, results to standard output or to the ``-o`` file,
which is written under a temporary name and moved into place only when the command succeeded
(``cli_files`` reads and writes the files). A missing file or column, a bad parameter or device, an
unreadable model, an ``-o`` that is an input, or a failure to write (a full disk) exits with status 2
and one line on standard error.
"""

import argparse
import ast
import difflib
import os
import pathlib
import sys
import warnings

from . import registry
from .cli_files import (
    DECODED_FORMATS,
    SCORE_FORMATS,
    TEXT_FORMATS,
    VECTOR_FORMATS,
    CommandError,
    check_model_output,
    check_output,
    read_labels,
    read_records,
    read_vectors,
    write_scores,
    write_texts,
    write_vectors,
)

# The choices of --estimator and of the demo's --architecture, written out so that building the parser
# (`sktextae --help`, an argument error) imports no torch: the estimators, sktextae.nn and the demo are
# imported by the commands that use them. The tests check these against registry.ESTIMATORS and
# nn.ARCHITECTURES.
ESTIMATORS = ("TextAutoencoder", "TextAutoencoderClassifier", "TextAutoencoderRegressor")
ARCHITECTURES = ("transformer", "gru", "lstm", "bow")


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.overwrite_plots and args.plots is None:
        parser.error("--overwrite-plots replaces the plots of --plots DIR: pass --plots too.")
    with warnings.catch_warnings():  # restores Python's own printer when the command ends
        warnings.showwarning = _warning_printer(args.command)
        return _run(args)


def _run(args):
    if args.command == "demo":
        from .demo import run_demo  # the demo's imports stay out of `sktextae --help`

        try:
            run_demo(architecture=args.architecture, latent_dim=args.latent_dim, max_epochs=args.max_epochs,
                     max_texts=args.max_texts, random_state=args.random_state, plots=args.plots,
                     overwrite_plots=args.overwrite_plots)
        # --max-texts too small for the corpus's modules, --latent-dim 0, a --plots folder that is a file, ...
        except ValueError as error:
            print(f"sktextae demo: error: {_one_line(error)}", file=sys.stderr)
            return 2
        except ImportError as error:  # --plots without matplotlib: the error names the pip install line
            if error.name != "matplotlib":
                raise
            print(f"sktextae demo: error: {_one_line(error)}", file=sys.stderr)
            return 2
        return 0
    from .exceptions import ModelFileError

    try:
        COMMANDS[args.command](args)
    except (CommandError, ModelFileError) as error:
        print(f"sktextae {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sktextae encode ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="sktextae", description="Text autoencoders for scikit-learn.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train on the standard library's docstrings and show the results")
    demo.add_argument("--architecture", choices=ARCHITECTURES, default="gru",
                      help="default gru: on a CPU it learns fastest")
    demo.add_argument("--latent-dim", type=int, default=64)
    demo.add_argument("--max-epochs", type=int, default=15)
    demo.add_argument("--max-texts", type=int, default=3000, help="texts drawn from the corpus (default 3000)")
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--plots", metavar="DIR", default=None,
                      help="also write history.png and latent_map.png into DIR (created if missing; needs matplotlib: "
                           "pip install \"sktextae[plot]\")")
    demo.add_argument("--overwrite-plots", action="store_true",
                      help="replace a history.png or latent_map.png in DIR that the demo did not write")

    texts_help = f"texts: a file ({', '.join(TEXT_FORMATS)}; .txt holds one text a line) or - for standard input"
    fit = commands.add_parser("fit", help="train a model on texts and save it to a folder",
                              description="Train an estimator on texts and save it with save() to MODEL_DIR.")
    fit.add_argument("texts", metavar="TEXTS", help=texts_help)
    fit.add_argument("-o", "--output", metavar="MODEL_DIR", required=True, help="the folder to save the model to")
    fit.add_argument("--estimator", choices=ESTIMATORS, default="TextAutoencoder")
    fit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="an estimator parameter, repeatable; VALUE is read as a Python literal (64, 0.5, None, "
                          "'gru') or else as a string, e.g. --param latent_dim=64 --param architecture=gru")
    _text_column(fit)
    fit.add_argument("--label-column", default=None,
                     help="the labels (classifier) or targets (regressor) in a .csv, .jsonl or .parquet file; "
                          "an empty value marks an unlabelled text")
    fit.add_argument("--overwrite", action="store_true", help="replace a model saved at MODEL_DIR before")

    encode = commands.add_parser("encode", help="encode texts to latent vectors",
                                 description="Encode texts to latent vectors with a saved model.")
    encode.add_argument("model", metavar="MODEL_DIR")
    encode.add_argument("texts", metavar="TEXTS", help=texts_help)
    encode.add_argument("-o", "--output", metavar="VECTORS",
                        help=f"the vectors ({', '.join(VECTOR_FORMATS)}; .parquet needs pyarrow); "
                             f"CSV on standard output without it")
    _text_column(encode)
    _device(encode)

    decode = commands.add_parser("decode", help="decode latent vectors to texts",
                                 description="Decode latent vectors (one per row) to texts with a saved model.")
    decode.add_argument("model", metavar="MODEL_DIR")
    decode.add_argument("vectors", metavar="VECTORS", help=f"the vectors ({', '.join(VECTOR_FORMATS)})")
    decode.add_argument("-o", "--output", metavar="TEXTS",
                        help=f"the texts ({', '.join(DECODED_FORMATS)}); one a line on standard output without it")
    decode.add_argument("--strategy", choices=("greedy", "beam", "sample"), default="greedy")
    decode.add_argument("--beam-size", type=int, default=4)
    decode.add_argument("--no-repeat-ngram-size", type=int, default=None, metavar="N",
                        help="no N-gram written twice in a text (default 3 for a sequence decoder; 0: off)")
    decode.add_argument("--repetition-penalty", type=float, default=1.0,
                        help="above 1, tokens already written are made less likely (default 1.0: off)")
    decode.add_argument("--length-penalty", type=float, default=0.0,
                        help="--strategy beam: rank texts by log-probability / length ** this (default 0)")
    decode.add_argument("--n-candidates", type=int, default=1,
                        help="decode this many texts per vector (the strategy's and sampled ones) and keep the one "
                             "that encodes nearest the vector (default 1: the strategy's text)")
    decode.add_argument("--random-state", type=int, default=None, help="seeds --strategy sample and --n-candidates")
    _device(decode)

    score = commands.add_parser("score", help="score each text (mean log-likelihood per token)",
                                description="Each text's score_samples: its mean log-likelihood per token "
                                            "under a saved model (higher is more typical).")
    score.add_argument("model", metavar="MODEL_DIR")
    score.add_argument("texts", metavar="TEXTS", help=texts_help)
    score.add_argument("-o", "--output", metavar="SCORES",
                       help=f"the scores ({', '.join(SCORE_FORMATS)}); one a line on standard output without it")
    _text_column(score)
    _device(score)
    return parser


def _text_column(parser):
    parser.add_argument("--text-column", default="text", help="the column (or JSON field) of a .csv, .jsonl or "
                                                              ".parquet file that holds the texts (default text)")


def _device(parser):
    parser.add_argument("--device", default="auto", help="auto (CUDA when available, else the CPU), cpu or cuda[:N]")


# -------------------------------------------------------------------------------------------- commands

def _fit(args):
    cls = _estimator_class(args.estimator)
    params = _parse_params(args.param, cls)
    supervised = args.estimator != "TextAutoencoder"
    if supervised and args.label_column is None:
        raise CommandError(f"{args.estimator} needs labels: pass --label-column with a .csv, .jsonl or .parquet file.")
    if not supervised and args.label_column is not None:
        raise CommandError("--label-column is for --estimator TextAutoencoderClassifier or TextAutoencoderRegressor.")
    output = pathlib.Path(args.output)
    check_model_output(output, args.texts)
    if output.exists() and not args.overwrite and (not output.is_dir() or any(output.iterdir())):
        raise CommandError(f"{output} exists: pass --overwrite to replace a saved model, or another -o folder.")
    columns = [args.text_column] + ([args.label_column] if supervised else [])
    records = read_records(args.texts, columns)
    texts = records[args.text_column]
    _progress(f"read {len(texts)} texts from {_name(args.texts)}")
    try:
        estimator = cls(**params)
        _progress(f"fitting {args.estimator} on {len(texts)} texts")
        if supervised:
            estimator.fit(texts, read_labels(records[args.label_column],
                                             regression=args.estimator.endswith("Regressor")))
        else:
            estimator.fit(texts)
        estimator.save(output, overwrite=args.overwrite)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    except OSError as error:  # a full disk, no permission, a read-only file system
        raise CommandError(f"-o {output}: cannot save the model ({error.strerror or error}).") from None
    _progress(f"saved the model to {output}")


def _encode(args):
    suffix = check_output(args.output, VECTOR_FORMATS, "vectors", inputs=[args.texts], default=".csv")
    model = _load(args)
    texts = read_records(args.texts, [args.text_column])[args.text_column]
    _progress(f"encoding {len(texts)} texts from {_name(args.texts)}")
    vectors = _apply(model.transform, texts)
    write_vectors(args.output, suffix, vectors, [str(name) for name in model.get_feature_names_out()])
    _done(args.output, f"{len(vectors)} vectors of {vectors.shape[1]} features")


def _decode(args):
    suffix = check_output(args.output, DECODED_FORMATS, "texts", inputs=[args.vectors], default=".txt")
    model = _load(args)
    vectors = read_vectors(args.vectors)
    _progress(f"decoding {len(vectors)} vectors from {_name(args.vectors)}")
    if not model.net_.module_.is_sequence_decoder:
        _progress(f"note: this model's decoder is a bag of words: each output is its {model.bag_size_} most probable "
                  f"tokens, most probable first, with no word order (a bag, not a text); a model with a sequence "
                  f"decoder (decoder='gru' or 'transformer') writes texts")
    options = {"strategy": args.strategy, "beam_size": args.beam_size, "random_state": args.random_state,
               "no_repeat_ngram_size": args.no_repeat_ngram_size, "repetition_penalty": args.repetition_penalty,
               "length_penalty": args.length_penalty, "n_candidates": args.n_candidates}
    texts = [str(text) for text in _apply(lambda Z: model.inverse_transform(Z, **options), vectors)]
    write_texts(args.output, suffix, texts)
    _done(args.output, f"{len(texts)} texts")


def _score(args):
    suffix = check_output(args.output, SCORE_FORMATS, "scores", inputs=[args.texts], default=".txt")
    model = _load(args)
    texts = read_records(args.texts, [args.text_column])[args.text_column]
    _progress(f"scoring {len(texts)} texts from {_name(args.texts)}")
    scores = _apply(model.score_samples, texts)
    write_scores(args.output, suffix, scores)
    _done(args.output, f"{len(scores)} scores")


COMMANDS = {"fit": _fit, "encode": _encode, "decode": _decode, "score": _score}


# -------------------------------------------------------------------------------------------- parameters

def _parse_params(pairs, cls):
    """``--param NAME=VALUE`` pairs -> keyword arguments, each name checked against the estimator's."""
    known = sorted(cls().get_params(deep=False))
    params = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CommandError(f"--param {pair!r}: expected NAME=VALUE, such as --param latent_dim=64.")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" did you mean {close[0]}?" if close else f" the parameters of {cls.__name__}: {', '.join(known)}."
            raise CommandError(f"--param {pair!r}: {cls.__name__} has no parameter {name!r};{hint}")
        if name in ("pretrained", "callbacks"):
            raise CommandError(f"--param {name}: Python objects cannot be passed on the command line.")
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            params[name] = text  # a bare word: architecture=gru
    return params


# -------------------------------------------------------------------------------------------- helpers

def _estimator_class(name):
    from . import estimator, supervised  # noqa: F401  importing them registers the classes (and imports torch)

    return registry.ESTIMATORS[name]


def _load(args):
    from . import load
    from .device import resolve_device

    try:  # before the folder: a device that sktextae cannot use is the argument's fault, not the model's
        device = resolve_device(args.device)
    except ValueError as error:
        raise CommandError(f"--device: {error}") from None
    if not pathlib.Path(args.model).is_dir():
        raise CommandError(f"{args.model}: no such model folder (one that sktextae fit or save() wrote).")
    try:
        model = load(args.model, device=device)
    except ValueError as error:  # ModelFileError is one
        raise CommandError(str(error)) from None
    _progress(f"loaded {type(model).__name__} from {args.model} on {model.device_}")
    return model


def _apply(method, data):
    """Call a model method on the input, a ValueError or TypeError (bad input) ending the command."""
    try:
        return method(data)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None


# What to do about texts cut to max_length, on the command line: the library's warning says it in Python.
_TRUNCATION_FIXES = {"fit": "pass --param max_length=N with a larger N to keep them whole.",
                     "encode": "fit a model with a larger --param max_length to encode them whole.",
                     "score": "fit a model with a larger --param max_length to score them whole."}


def _warning_printer(command):
    """A ``warnings.showwarning`` that prints each warning as one line on standard error, without the
    file, line and source that Python's printer adds (those of the command line, not the user's), a
    ``TruncationWarning`` with the command line's fix; a line already printed is not printed again."""
    from .exceptions import TruncationWarning

    printed = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = _one_line(message)
        if issubclass(category, TruncationWarning):
            counts = text.split(";")[0]  # "3 of 40 texts were longer than max_length=12 tokens and were truncated"
            text = f"{counts}; {_TRUNCATION_FIXES[command]}" if command in _TRUNCATION_FIXES else f"{counts}."
        elif not category.__module__.startswith("sktextae"):
            text = f"{category.__name__}: {text}"
        if text not in printed:
            printed.add(text)
            print(f"sktextae {command}: warning: {text}", file=sys.stderr, flush=True)

    return show


def _progress(message):
    print(f"sktextae: {message}", file=sys.stderr, flush=True)


def _done(output, what):
    _progress(f"wrote {what} to {output}" if output else f"wrote {what} to standard output")


def _name(source):
    return "standard input" if source == "-" else source


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    raise SystemExit(main())
