"""The command line's files: texts read from ``.txt``, ``.csv``, ``.jsonl`` or ``.parquet`` files or from
standard input, labels and vectors read from files, and vectors, texts and scores written to standard
output or to the ``-o`` file.

An ``-o`` file is checked before any work (its format, its folder, that it is not an input) and written
with ``files.atomic_file``: under a hidden temporary name, moved into place only when complete, with the
mode a plain ``open`` would give it. Every problem raises ``CommandError`` with one line that names the
file; the command line turns it into exit status 2.
"""

import contextlib
import csv
import difflib
import io
import json
import os
import pathlib
import stat
import sys

from .files import atomic_file

TEXT_FORMATS = (".txt", ".csv", ".jsonl", ".parquet")
VECTOR_FORMATS = (".npy", ".csv", ".parquet")
DECODED_FORMATS = (".txt", ".csv", ".jsonl")
SCORE_FORMATS = (".txt", ".csv", ".jsonl", ".npy")


class CommandError(Exception):
    """A problem with the command's input that ends it with exit status 2 and a one-line message."""


# -------------------------------------------------------------------------------------------- reading

def read_records(source, columns):
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


def read_labels(values, *, regression):
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


def read_vectors(source):
    """The rows of a vectors file (.npy, .csv with or without a header, or .parquet) as a 2-D array."""
    import numpy as np

    path = _existing(source)
    suffix = _suffix(source, VECTOR_FORMATS, "vectors")
    if suffix == ".npy":
        try:
            vectors = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CommandError(f"{source}: not a numeric .npy file ({error}).") from None
        except OSError as error:
            raise CommandError(f"{source}: cannot read it ({_reason(error)}).") from None
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
    except OSError as error:  # no permission to read it, for one
        raise CommandError(f"{path}: cannot read it ({_reason(error)}).") from None


def _suffix(name, formats, what):
    suffix = pathlib.Path(name).suffix.lower()
    if suffix not in formats:
        raise CommandError(f"{name}: unknown {what} format {suffix or '(no extension)'!r}; use {', '.join(formats)}.")
    return suffix


# -------------------------------------------------------------------------------------------- outputs

def check_output(output, formats, what, *, inputs, default):
    """The format of the ``-o`` file (``default`` when the results go to standard output), checked before
    any work: a known format, a file in an existing folder, not one of the ``inputs`` (through a link or
    not), and not a symbolic link, a device or a pipe, which a file moved into place would replace."""
    if output is None:
        return default
    suffix = _suffix(output, formats, what)
    path = pathlib.Path(output)
    for source in inputs:
        if source != "-" and _same_file(path, source):
            raise CommandError(f"-o {output} is the input {source}: writing it would replace what the command "
                               f"reads. Pass another -o file.")
    if path.is_symlink():
        raise CommandError(f"-o {output} is a symbolic link: it is never replaced. Pass the file it points to, "
                           f"or another name.")
    if path.is_dir():
        raise CommandError(f"{output} is a folder: pass a file name with -o.")
    if path.exists() and not path.is_file():
        raise CommandError(f"-o {output} is not a regular file (a device or a pipe): -o writes a file in its place; "
                           f"leave -o out to write to standard output.")
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such folder for -o {output}.")
    if suffix == ".parquet":
        _pyarrow(f"write .parquet {what}")
    return suffix


def check_model_output(output, texts):
    """Refuse a model folder ``-o output`` that is the texts file or a folder that holds it: saving the
    model there, or replacing the model saved there, would delete the texts."""
    if texts == "-":
        return
    path = pathlib.Path(texts)
    try:
        places = [pathlib.Path(os.path.abspath(path)), path.resolve()]  # the texts' folders, before and after links
    except (OSError, RuntimeError):  # a loop of symbolic links: reading the texts says so
        return
    if any(_same_file(place, output) for start in places for place in (start, *start.parents)):
        raise CommandError(f"-o {output} is the texts file {texts} or a folder that holds it: saving the model "
                           f"there would delete the texts. Pass another -o folder.")


def _same_file(first, second):
    try:
        return os.path.samefile(first, second)  # the same device and inode: a hard link, or a path through a link
    except OSError:  # one of them does not exist (yet)
        return False


def write_vectors(output, suffix, vectors, names):
    """Vectors (one row per text) as ``suffix`` to ``output``, or as CSV to standard output when it is None."""
    import numpy as np

    if suffix == ".npy":
        _write_file(output, "wb", lambda handle: np.save(handle, vectors))
    elif suffix == ".parquet":
        table = _pyarrow("write .parquet vectors").table({name: vectors[:, i] for i, name in enumerate(names)})
        _write_file(output, "wb", lambda handle: _pyarrow_parquet().write_table(table, handle))
    else:
        _write_text(output, lambda handle: _write_csv(handle, names, ([repr(float(v)) for v in row]
                                                                      for row in vectors)))


def write_texts(output, suffix, texts):
    """Texts as ``suffix`` (one a line in .txt, a column in .csv, a field in .jsonl) to ``output`` or standard output."""
    _write_text(output, lambda handle: _write_column(handle, suffix, "text", texts))


def write_scores(output, suffix, scores):
    """Scores as ``suffix`` (.npy, or one a line in .txt, .csv and .jsonl) to ``output`` or standard output."""
    import numpy as np

    if suffix == ".npy":
        _write_file(output, "wb", lambda handle: np.save(handle, scores))
    else:
        _write_text(output, lambda handle: _write_column(handle, suffix, "score", [float(s) for s in scores]))


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
        _write_stdout(write)
    else:
        _write_file(output, "w", write)


def _write_stdout(write):
    try:
        write(sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # `sktextae encode ... | head`: the reader left, which the command line ends quietly
    except OSError as error:  # `> file` on a full disk
        _discard_stdout()
        raise CommandError(f"standard output: cannot write the results ({_reason(error)}).") from None


def _discard_stdout():
    """Point standard output at the null device: Python flushes what is left in its buffer at exit, and
    that second failure would print a traceback after our one-line message."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (a test's capture): nothing to flush
        descriptor = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, descriptor)
        os.close(null)


def _write_file(output, mode, write):
    """Write the ``-o`` file with ``files.atomic_file``. A failure to write (a full disk, no permission, a
    read-only file system) leaves no temporary file, and the file there, if any, as it was."""
    path = pathlib.Path(output)
    permissions = _permissions(path)
    try:
        with atomic_file(path, mode) as handle:
            if permissions is not None and hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), permissions)
            write(handle)
    except OSError as error:
        left = "the file there was left as it was" if permissions is not None else "nothing was written"
        raise CommandError(f"-o {output}: cannot write it ({_reason(error)}); {left}.") from None


def _permissions(path):
    """The permission bits of the file that ``path`` replaces (None for a new file, whose mode the umask
    decides): a replaced file keeps them, as a file rewritten with ``open`` does, so a private file stays private."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o777  # no set-user-ID or sticky bit on a data file
    except OSError:
        return None


def _reason(error):
    return error.strerror or str(error) or type(error).__name__
