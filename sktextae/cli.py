"""The ``sktextae`` command line: ``demo``, ``fit``, ``encode``, ``decode`` and ``score``.

Texts are read from ``.txt`` (one text a line), ``.csv``, ``.jsonl`` or ``.parquet`` files, or from
standard input (``-``, one text a line). Lines end at ``\n`` (or ``\r\n``) only: a form feed, U+2028
or another character that Python's ``str.splitlines`` also breaks at stays inside its text. Progress goes to standard error, results to standard output
or to the ``-o`` file, which is written under a temporary name and moved into place only when the
command succeeded. A missing file or column, a bad parameter or an unreadable model exits with
status 2 and one line on standard error.
"""

import argparse
import ast
import contextlib
import csv
import difflib
import io
import json
import os
import pathlib
import sys
import tempfile

from .nn import ARCHITECTURES

TEXT_FORMATS = (".txt", ".csv", ".jsonl", ".parquet")
VECTOR_FORMATS = (".npy", ".csv", ".parquet")
DECODED_FORMATS = (".txt", ".csv", ".jsonl")
SCORE_FORMATS = (".txt", ".csv", ".jsonl", ".npy")
ESTIMATORS = ("TextAutoencoder", "TextAutoencoderClassifier", "TextAutoencoderRegressor")


class CommandError(Exception):
    """A problem with the command's input that ends it with exit status 2 and a one-line message."""


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo  # the demo's imports stay out of `sktextae --help`

        run_demo(architecture=args.architecture, latent_dim=args.latent_dim, max_epochs=args.max_epochs,
                 max_texts=args.max_texts, random_state=args.random_state)
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
    decode.add_argument("--random-state", type=int, default=None, help="seeds --strategy sample")
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
    from .persistence import classes

    cls = classes()[args.estimator]
    params = _parse_params(args.param, cls)
    supervised = args.estimator != "TextAutoencoder"
    if supervised and args.label_column is None:
        raise CommandError(f"{args.estimator} needs labels: pass --label-column with a .csv, .jsonl or .parquet file.")
    if not supervised and args.label_column is not None:
        raise CommandError("--label-column is for --estimator TextAutoencoderClassifier or TextAutoencoderRegressor.")
    output = pathlib.Path(args.output)
    if output.exists() and not args.overwrite and (not output.is_dir() or any(output.iterdir())):
        raise CommandError(f"{output} exists: pass --overwrite to replace a saved model, or another -o folder.")
    columns = [args.text_column] + ([args.label_column] if supervised else [])
    records = _read_records(args.texts, columns)
    texts = records[args.text_column]
    _progress(f"read {len(texts)} texts from {_name(args.texts)}")
    try:
        estimator = cls(**params)
        _progress(f"fitting {args.estimator} on {len(texts)} texts")
        if supervised:
            estimator.fit(texts, _labels(records[args.label_column], regression=args.estimator.endswith("Regressor")))
        else:
            estimator.fit(texts)
        estimator.save(output, overwrite=args.overwrite)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    _progress(f"saved the model to {output}")


def _encode(args):
    import numpy as np

    model = _load(args)
    texts = _read_records(args.texts, [args.text_column])[args.text_column]
    _progress(f"encoding {len(texts)} texts from {_name(args.texts)}")
    vectors = _apply(model.transform, texts)
    names = [str(name) for name in model.get_feature_names_out()]
    suffix = _suffix(args.output, VECTOR_FORMATS, "vectors") if args.output else ".csv"
    if suffix == ".npy":
        _write_bytes(args.output, lambda handle: np.save(handle, vectors))
    elif suffix == ".parquet":
        table = _pyarrow("write .parquet vectors").table({name: vectors[:, i] for i, name in enumerate(names)})
        _write_bytes(args.output, lambda handle: _pyarrow_parquet().write_table(table, handle))
    else:
        _write_text(args.output, lambda handle: _write_csv(handle, names, ([repr(float(v)) for v in row]
                                                                           for row in vectors)))
    _done(args.output, f"{len(vectors)} vectors of {vectors.shape[1]} features")


def _decode(args):
    model = _load(args)
    vectors = _read_vectors(args.vectors)
    _progress(f"decoding {len(vectors)} vectors from {_name(args.vectors)}")
    options = {"strategy": args.strategy, "beam_size": args.beam_size, "random_state": args.random_state}
    texts = [str(text) for text in _apply(lambda Z: model.inverse_transform(Z, **options), vectors)]
    suffix = _suffix(args.output, DECODED_FORMATS, "texts") if args.output else ".txt"
    _write_text(args.output, lambda handle: _write_column(handle, suffix, "text", texts))
    _done(args.output, f"{len(texts)} texts")


def _score(args):
    import numpy as np

    model = _load(args)
    texts = _read_records(args.texts, [args.text_column])[args.text_column]
    _progress(f"scoring {len(texts)} texts from {_name(args.texts)}")
    scores = _apply(model.score_samples, texts)
    suffix = _suffix(args.output, SCORE_FORMATS, "scores") if args.output else ".txt"
    if suffix == ".npy":
        _write_bytes(args.output, lambda handle: np.save(handle, scores))
    else:
        _write_text(args.output, lambda handle: _write_column(handle, suffix, "score", [float(s) for s in scores]))
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


def _labels(values, *, regression):
    """Labels read from a file: empty (or null) marks an unlabelled text; numbers given as text become numbers."""
    import numpy as np

    if regression:
        try:
            return np.array([np.nan if value in (None, "") else float(value) for value in values])
        except (TypeError, ValueError):
            raise CommandError("--label-column: a regressor's targets must be numbers (empty for unlabelled).") from None
    labels = [None if value in (None, "") else value for value in values]
    as_text = [label for label in labels if isinstance(label, str)]
    try:  # "0", "1", "-1" from a CSV are the integers a classifier (and its -1 for unlabelled) expects
        numbers = {text: int(text) for text in as_text}
        labels = [numbers.get(label, label) if isinstance(label, str) else label for label in labels]
    except ValueError:
        pass
    return np.array(labels, dtype=object)


# -------------------------------------------------------------------------------------------- reading

def _read_records(source, columns):
    """The named columns of a texts file (or of standard input's lines, column ``columns[0]``)."""
    if source == "-":
        lines = _lines(sys.stdin.read())
        if len(columns) > 1:
            raise CommandError("standard input holds texts only (one a line): give labels in a .csv, .jsonl or "
                               ".parquet file.")
        return {columns[0]: lines}
    path = _existing(source)
    suffix = _suffix(source, TEXT_FORMATS, "texts")
    if suffix == ".txt":
        if len(columns) > 1:
            raise CommandError(f"{source}: a .txt file holds texts only (one a line): give labels in a .csv, "
                               f".jsonl or .parquet file.")
        return {columns[0]: _lines(_read_text_file(path))}
    if suffix == ".csv":
        csv.field_size_limit(2**31 - 1)
        reader = csv.DictReader(io.StringIO(_read_text_file(path), newline=""))
        rows, header = list(reader), reader.fieldnames or []
        _check_columns(source, columns, header)
        return {column: [row[column] if row[column] is not None else "" for row in rows] for column in columns}
    if suffix == ".jsonl":
        return _read_jsonl(source, path, columns)
    table = _read_parquet(path)
    _check_columns(source, columns, table.column_names)
    return {column: table.column(column).to_pylist() for column in columns}


def _read_jsonl(source, path, columns):
    records = {column: [] for column in columns}
    for number, line in enumerate(_lines(_read_text_file(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise CommandError(f"{source}, line {number}: not JSON ({error}).") from None
        except RecursionError:  # arrays or objects nested thousands deep
            raise CommandError(f"{source}, line {number}: JSON nested too deeply to read.") from None
        if isinstance(record, str) and len(columns) == 1:
            record = {columns[0]: record}  # a file of bare JSON strings
        if not isinstance(record, dict):
            raise CommandError(f"{source}, line {number}: a JSON object with a {columns[0]!r} field expected.")
        _check_columns(f"{source}, line {number}", columns, list(record))
        for column in columns:
            records[column].append(record[column])
    return records


def _lines(text):
    """The lines of a text, split at ``\n`` (a ``\r`` before it dropped), as ``wc -l`` counts them: not at
    the other line boundaries of ``str.splitlines`` (``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``,
    U+2028, U+2029), which texts from the web hold inside a text and JSON inside a string."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty text after it
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _check_columns(source, columns, available):
    for column in columns:
        if column not in available:
            close = difflib.get_close_matches(column, [str(name) for name in available], n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"it has {', '.join(map(str, available)) or 'none'}."
            raise CommandError(f"{source}: no column {column!r}: {hint} Choose one with --text-column/--label-column.")


def _read_vectors(source):
    import numpy as np

    path = _existing(source)
    suffix = _suffix(source, VECTOR_FORMATS, "vectors")
    if suffix == ".npy":
        try:
            vectors = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CommandError(f"{source}: not a numeric .npy file ({error}).") from None
    elif suffix == ".parquet":
        table = _read_parquet(path)
        vectors = np.column_stack([table.column(name).to_numpy() for name in table.column_names])
    else:
        rows = list(csv.reader(io.StringIO(_read_text_file(path), newline="")))
        if rows and not _numeric(rows[0]):
            rows = rows[1:]  # a header
        try:
            vectors = np.array([[float(value) for value in row] for row in rows if row], dtype=np.float64)
        except ValueError:
            raise CommandError(f"{source}: every row after the header must hold numbers only.") from None
    return vectors


def _numeric(row):
    try:
        [float(value) for value in row]
    except ValueError:
        return False
    return True


def _read_parquet(path):
    parquet = _pyarrow_parquet("read .parquet files")
    try:
        return parquet.read_table(path)
    except Exception as error:  # pyarrow's ArrowInvalid and friends
        raise CommandError(f"{path}: not a readable parquet file ({error}).") from None


def _pyarrow(purpose):
    try:
        import pyarrow
    except ImportError:
        raise CommandError(f"pyarrow is needed to {purpose}: pip install pyarrow, or use another format.") from None
    return pyarrow


def _pyarrow_parquet(purpose="write .parquet files"):
    _pyarrow(purpose)
    import pyarrow.parquet

    return pyarrow.parquet


def _existing(source):
    path = pathlib.Path(source)
    if not path.is_file():
        raise CommandError(f"{source}: no such file.")
    return path


def _read_text_file(path):
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise CommandError(f"{path}: not UTF-8 text ({error}).") from None


def _suffix(name, formats, what):
    suffix = pathlib.Path(name).suffix.lower()
    if suffix not in formats:
        raise CommandError(f"{name}: unknown {what} format {suffix or '(no extension)'!r}; use {', '.join(formats)}.")
    return suffix


# -------------------------------------------------------------------------------------------- writing

def _write_csv(handle, header, rows):
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _write_column(handle, suffix, name, values):
    if suffix == ".csv":
        _write_csv(handle, [name], ([value] for value in values))
    elif suffix == ".jsonl":
        for value in values:
            handle.write(json.dumps({name: value}, ensure_ascii=False) + "\n")
    else:
        for value in values:
            handle.write(f"{value}\n" if not isinstance(value, str) else value.replace("\n", " ") + "\n")


def _write_text(output, write):
    if output is None:
        write(sys.stdout)
        sys.stdout.flush()
        return
    _atomic(output, "w", write)


def _write_bytes(output, write):
    _atomic(output, "wb", write)


def _atomic(output, mode, write):
    """Write ``output`` under a temporary name in its folder, moved into place once complete."""
    output = pathlib.Path(output)
    if output.is_dir():
        raise CommandError(f"{output} is a folder: pass a file name with -o.")
    if not output.parent.is_dir():
        raise CommandError(f"{output.parent}: no such folder for -o {output}.")
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as handle:
            write(handle)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -------------------------------------------------------------------------------------------- helpers

def _load(args):
    from . import load

    if not pathlib.Path(args.model).is_dir():
        raise CommandError(f"{args.model}: no such model folder (one that sktextae fit or save() wrote).")
    try:
        model = load(args.model, device=args.device)
    except ValueError as error:  # ModelFileError is one; a bad --device another
        raise CommandError(str(error)) from None
    _progress(f"loaded {type(model).__name__} from {args.model} on {model.device_}")
    return model


def _apply(method, data):
    """Call a model method on the input, a ValueError or TypeError (bad input) ending the command."""
    try:
        return method(data)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None


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
