"""Writing and reading files safely: one atomic writer for files and one for folders (written under a
hidden temporary name, flushed to disk, then moved into place), SHA-256 of files, and one canonical
JSON encoding for checksums and fingerprints. Used by saving, checkpoints, ONNX export and the CLI.

A process killed at any moment leaves either the previous file or folder, or the new one whole, plus
at most a hidden temporary sibling (``.<name>.<random>.partial``) that the next write of the same
target removes. New files get the mode that the process' umask gives (as ``open`` would), not the
0600 of ``tempfile.mkstemp``.
"""

import contextlib
import errno
import hashlib
import json
import os
import pathlib
import shutil
import uuid

PARTIAL = ".partial"


def file_sha256(file):
    """The SHA-256 of a file's bytes (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def texts_sha256(texts, labels=None):
    """A SHA-256 (hex) of texts, each in UTF-8 after its length (lone surrogates kept as they are), and of
    ``labels`` (an array, its dtype and shape too) when given: equal for equal data, whatever the container."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    if labels is not None:
        import numpy as np

        labels = np.ascontiguousarray(labels)
        digest.update(f"{labels.dtype.str}{labels.shape}".encode() + labels.tobytes())
    return digest.hexdigest()


def canonical_json(value):
    """``value`` as compact JSON with sorted keys (bytes): the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


def json_sha256(value):
    """The SHA-256 (hex) of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def fsync(path):
    """Flush a file (or a folder's entries) to disk, so that a rename never outlives what it renames."""
    with contextlib.suppress(OSError):  # a folder cannot be opened everywhere (Windows)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _temporary_name(path):
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL}"


def check_writable_target(path, *, what):
    """Refuse, before any work, a target that an atomic rename cannot replace: an empty path, the
    current folder or one that holds it, a path whose parent folder is missing."""
    path = pathlib.Path(path)
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise ValueError(f"{what} needs a file or folder name, got {str(path)!r}.")
    absolute = pathlib.Path(os.path.abspath(path))
    cwd = pathlib.Path(os.getcwd())
    if absolute == cwd or absolute in cwd.parents:
        raise ValueError(f"{str(path)!r} is the current working folder (or holds it): {what} cannot replace it. "
                         f"Pass a path inside it, such as {str(path / 'model')!r}.")
    if not absolute.parent.is_dir():
        raise ValueError(f"the folder {str(absolute.parent)!r} to write {path.name!r} in does not exist.")
    return path


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w", UTF-8 with no newline
    translation); when the block ends without an exception, flush it to disk and move it onto
    ``path``, replacing a file there. On an exception the temporary file is removed.

    The file is created with ``os.open(..., 0o666)``, so the umask decides its mode."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder, not a file", str(path))
    temporary = _temporary_name(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
        with os.fdopen(descriptor, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync(path.parent)


@contextlib.contextmanager
def atomic_folder(path, *, replace=False):
    """Yield a fresh temporary folder beside ``path`` to write into; when the block ends without an
    exception, flush every file in it and move it onto ``path``.

    ``path`` must not exist, or be an empty folder, or (with ``replace=True``, which the caller grants
    only after checking that the folder there is one it wrote) be a folder that is moved aside under a
    hidden name, replaced, then removed. A symbolic link is never followed or replaced. On an exception
    the temporary folder is removed and ``path`` is left as it was."""
    path = pathlib.Path(path)
    temporary = _temporary_name(path)
    temporary.mkdir()
    try:
        yield temporary
        for file in sorted(temporary.rglob("*"), reverse=True):  # files first, then their folders
            fsync(file)
        fsync(temporary)
        _move_into_place(temporary, path, replace=replace)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    fsync(path.parent)


def _move_into_place(temporary, path, *, replace):
    if path.is_symlink():
        raise ValueError(f"{str(path)!r} is a symbolic link: it is never replaced. Pass the folder it points to, "
                         f"or another path.")
    old = None
    if path.is_dir() and any(path.iterdir()):
        if not replace:
            raise FileExistsError(errno.EEXIST, f"{path} exists and is not empty", str(path))
        old = path.parent / f".{path.name}.replaced-{uuid.uuid4().hex[:8]}{PARTIAL}"
        os.replace(path, old)
    elif path.is_dir():
        path.rmdir()
    elif path.exists():
        raise FileExistsError(errno.EEXIST, f"{path} is a file", str(path))
    os.replace(temporary, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_partials(folder, name):
    """Remove what killed atomic writes of ``folder/name`` left: hidden ``.<name>.*.partial`` siblings."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return
    for leftover in folder.glob(f".{name}.*{PARTIAL}"):
        if leftover.is_symlink() or not leftover.is_dir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        else:
            shutil.rmtree(leftover, ignore_errors=True)


# A safetensors header is a JSON object of a few hundred bytes per tensor: 100 MB is far beyond any
# real model's, and bounds what a crafted file can make us read before its shapes are checked.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1}


def safetensors_header(file):
    """The tensors a safetensors file holds, ``{name: (dtype, shape)}``, read from its header alone (no
    tensor is loaded), after checking that the header is well formed and that the data it describes
    lies inside the file. Raises ``ValueError`` saying what is wrong; the caller names the file."""
    file = pathlib.Path(file)
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError("shorter than a safetensors header")
        length = int.from_bytes(prefix, "little")
        if length > min(_MAX_SAFETENSORS_HEADER, size - 8):
            raise ValueError(f"its header claims {length} bytes, more than the file holds")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"its header is not JSON ({error.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    tensors, data_size = {}, size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name[:80]!r}: a header entry needs dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name[:80]!r}: unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(_natural(n) for n in shape) or len(shape) > 8:
            raise ValueError(f"tensor {name[:80]!r}: shape {str(shape)[:40]} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(n) for n in offsets)
                and offsets[0] <= offsets[1] <= data_size):
            raise ValueError(f"tensor {name[:80]!r}: its data offsets lie outside the file")
        count = 1
        for n in shape:
            count *= n
        if count * SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {name[:80]!r}: {dtype} {shape} does not fill its {offsets[1] - offsets[0]} bytes")
        tensors[name] = (dtype, tuple(shape))
    return tensors


def _natural(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
