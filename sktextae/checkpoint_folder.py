"""The checkpoint folder itself (its format is described in ``sktextae.checkpoint``): the lock that keeps it
to one fit at a time, the index of the folders that the package wrote there, the names of new ones,
and their removal: the package deletes only what its index names.

It imports nothing of ``sktextae.checkpoint`` (which imports it), so that imports go one way.
"""

import contextlib
import json
import logging
import os
import pathlib
import shutil
import threading
import uuid
import weakref

from .checkpoint_manifest import (
    EPOCH_FOLDER,
    MANIFEST,
    Invalid,
    check_int,
    check_object,
    describe,
    fingerprint_differences,
    load_json,
    read_manifest,
)
from .exceptions import ModelFileError
from .files import atomic_file, remove_partials

try:
    import fcntl
except ImportError:  # Windows: no flock, so fits there are not locked against each other
    fcntl = None

INDEX_VERSION = 1
LATEST = "LATEST"
INDEX, LOCK = ".sktextae-checkpoints.json", ".sktextae-checkpoints.lock"

# The logger these warnings had before this module was split out of sktextae.checkpoint: a user's
# logging configuration for it still applies.
_logger = logging.getLogger("sktextae.checkpoint")


# ---------------------------------------------------------------------------------------------- the folder
# Two fits writing into one folder would remove each other's checkpoints as they go: a fit holds an
# exclusive flock on the folder's lock file from read() to the end of training, and a second one is
# refused. flock ends with the process, so a killed fit leaves no stale lock; the file holds the pid
# only to name it in the error. Within a process, _HELD knows which folders are held and by which
# thread: flock alone would refuse a fit its own earlier lock, kept alive by the traceback of a fit
# that failed before training.

GUARD = threading.RLock()
_HELD = weakref.WeakValueDictionary()  # realpath of a folder -> this process' _FolderLock on it
UNCLAIMED = {}  # realpath -> the lock that read() took, until the fit's FitCheckpoints takes it over


class _FolderLock:
    """This process' hold on a checkpoint folder, and the names that the folder's index lists
    (``written``; ``indexed``: whether the index file was there when the fit began)."""

    def __init__(self, directory, key, *, created):
        self.directory, self.key, self.created = directory, key, created
        self.thread, self.pid, self.training = threading.get_ident(), os.getpid(), False
        self.written, self.indexed = [], False
        descriptor = _flock(directory) if fcntl is not None else None
        # Dropped without release() (a fit that failed before training, once its traceback is gone),
        # the lock ends all the same.
        self._finalizer = weakref.finalize(self, _unlock, descriptor, directory / LOCK, self.pid)

    @property
    def held(self):
        return self._finalizer.alive

    def release(self, *, remove_created=True):
        with GUARD:
            if _HELD.get(self.key) is self:
                del _HELD[self.key]
            if UNCLAIMED.get(self.key) is self:
                del UNCLAIMED[self.key]
        held = self._finalizer.alive
        self._finalizer()
        if held and remove_created and self.created:
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # made by this fit, which wrote nothing in it: as if it never ran


def open_folder(directory, fingerprint):
    """Create ``directory`` if missing, lock it, and read its index (see ``_read_index``)."""
    folder_lock = lock(directory, created=_make_folder(directory))
    try:
        folder_lock.written, folder_lock.indexed = _read_index(directory, fingerprint)
    except BaseException:
        folder_lock.release()
        raise
    return folder_lock


def claim(directory, fingerprint):
    """The lock that ``read`` took on ``directory`` in this thread, or a new one."""
    key = os.path.realpath(directory)
    with GUARD:
        folder_lock = UNCLAIMED.get(key)
        if folder_lock is not None and folder_lock.thread == threading.get_ident() and folder_lock.held:
            return UNCLAIMED.pop(key)
    return open_folder(pathlib.Path(directory), fingerprint)


def _make_folder(directory):
    """Create ``directory`` when missing (True when this did), or say now why it cannot be: before
    training rather than at the end of the first epoch."""
    if directory.is_dir():
        return False
    if directory.exists() or directory.is_symlink():
        raise ValueError(f"checkpoint_dir={str(directory)!r} is a file: pass a folder (it is created if missing).")
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        if directory.is_dir():  # made by another fit at this very moment
            return False
        raise ValueError(f"checkpoint_dir={str(directory)!r} is a file: pass a folder (it is created if "
                         f"missing).") from None
    except OSError as error:
        blocker = next((parent for parent in directory.parents if parent.exists()), None)
        reason = error.strerror or str(error)
        if blocker is not None and not blocker.is_dir():
            reason = f"{str(blocker)!r} is a file, not a folder"
        raise ValueError(f"checkpoint_dir={str(directory)!r} cannot be created ({reason}): pass a folder that "
                         f"exists or can be created.") from None
    return True


def lock(directory, *, created=False):
    key = os.path.realpath(directory)
    with GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():  # not one a forked child inherited from its parent
            if held.thread == threading.get_ident() and not held.training:
                # A fit of this thread that failed before training (its traceback still holds its lock):
                # this thread runs one fit at a time, so that one has ended.
                held.release(remove_created=False)
            else:
                raise _in_use(directory, os.getpid(), " in this process")
        folder_lock = _FolderLock(pathlib.Path(directory), key, created=created)
        _HELD[key] = folder_lock
    return folder_lock


def _flock(directory):
    """An open descriptor of ``directory``'s lock file, exclusively locked, with this process' id in it;
    None where the file system has no flock."""
    file = directory / LOCK
    while True:
        try:
            descriptor = os.open(file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            raise ValueError(f"checkpoint_dir={str(directory)!r}: its lock file {LOCK} cannot be opened "
                             f"({error.strerror or error}): pass a folder that you can write in.") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _recorded_pid(descriptor)
            os.close(descriptor)
            raise _in_use(directory, pid, "") from None
        except OSError as error:  # ENOLCK, EOPNOTSUPP: some network file systems
            os.close(descriptor)
            _logger.warning("checkpoint_dir=%r cannot be locked (%s): another fit using it at the same time would "
                            "remove this one's checkpoints.", str(directory), error.strerror or error)
            return None
        # Its holder may have released and unlinked the file between our open and our flock: a lock on a
        # file that no longer has this name locks nothing, so lock the one there now.
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(file, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
            return descriptor
        os.close(descriptor)


def _unlock(descriptor, file, pid):
    if descriptor is None:
        return
    if os.getpid() == pid:  # a forked child closes its copy without unlocking its parent's lock
        with contextlib.suppress(OSError):
            # Unlinked while still locked, so that a fit waiting to lock this file finds it gone and
            # locks a new one (see _flock).
            if os.path.samestat(os.fstat(descriptor), os.stat(file, follow_symlinks=False)):
                os.unlink(file)
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)  # for the forked children sharing the descriptor too
    os.close(descriptor)


def _recorded_pid(descriptor):
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _in_use(directory, pid, where):
    who = "another process" if pid is None else f"process {pid}"
    return ValueError(f"checkpoint_dir={str(directory)!r} is in use by {who} (another fit{where}): two fits cannot "
                      f"share a checkpoint folder. Wait for that fit to end, or pass another checkpoint_dir.")


# ---------------------------------------------------------------------------------------------- the index
# The package deletes only what its index names. An index rather than a check of each folder's manifest:
# a checkpoint being written has no manifest yet, and a name goes in the index before its folder is
# created, so what a kill leaves (the folder, or sktextae.files' hidden .<name>.*.partial beside it)
# is known to be ours even half written.

def _read_index(directory, fingerprint):
    """The folder names that ``directory``'s index lists, and whether it has one; without one (a folder
    written before the index existed), the checkpoints of this very fit found there, then indexed."""
    file = directory / INDEX
    if not os.path.lexists(file):
        return _adopt(directory, fingerprint), False
    index = load_json(file, directory, missing="")
    try:
        check_object(index, "", ("format_version", "written"))
        check_int(index["format_version"], "format_version", 1, INDEX_VERSION)
        written = index["written"]
        if not isinstance(written, list) or len(written) > 100_000:
            raise Invalid("written", f"must be a list of folder names, not {describe(written)}")
        for name in written:
            if not isinstance(name, str) or not EPOCH_FOLDER.fullmatch(name):
                raise Invalid("written", f"lists {describe(name)}, not the name of a checkpoint folder "
                                          f"(epoch-NNNN)")
    except Invalid as problem:
        raise ModelFileError(f"{file}: not the index of checkpoints that sktextae writes: {problem}. Delete "
                             f"{directory} to start afresh.") from None
    return list(dict.fromkeys(written)), True


def _adopt(directory, fingerprint):
    """The ``epoch-NNNN`` folders in ``directory`` that hold a checkpoint of this very fit (its manifest
    valid, its fingerprint this fit's): written by sktextae before the index existed. A folder of the
    user's holds no such manifest, and is left alone."""
    adopted = []
    for path in sorted(directory.iterdir()):
        if not EPOCH_FOLDER.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            manifest = read_manifest(path / MANIFEST, directory)
        except ModelFileError:
            continue
        if not fingerprint_differences(manifest["fingerprint"], fingerprint):
            adopted.append(path.name)
    if adopted:
        write_index(directory, adopted)
    return adopted


def write_index(directory, written):
    with atomic_file(directory / INDEX, "w") as handle:
        handle.write(json.dumps({"format_version": INDEX_VERSION, "written": list(written)}, indent=1) + "\n")


def remove_folder(path):
    if not path.is_symlink() and path.is_dir():  # a link put in its place is not ours, nor what it points to
        shutil.rmtree(path, ignore_errors=True)


def remove(directory):
    """Remove the checkpoints that sktextae wrote in ``directory``: ``LATEST`` first (a kill midway leaves
    nothing to resume from), the folders its index lists and what killed writes left of them, then
    the index. Nothing else is touched; the folder is removed when that leaves it empty."""
    directory = pathlib.Path(directory)
    file = directory / INDEX
    if not directory.is_dir() or not file.is_file():
        return
    try:
        written, _ = _read_index(directory, None)
    except ModelFileError as error:
        _logger.warning("%s The checkpoints in %s are left as they are.", error, directory)
        return
    with contextlib.suppress(FileNotFoundError):
        (directory / LATEST).unlink()
    remove_partials(directory, LATEST)
    for name in written:
        remove_folder(directory / name)
        remove_partials(directory, name)
    left = [name for name in written if os.path.lexists(directory / name)]
    if left:  # still ours to remove, by a later fit
        write_index(directory, left)
    else:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
        remove_partials(directory, INDEX)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if empty


# ---------------------------------------------------------------------------------------------- epoch folders

def new_folder_name(directory, epoch, written, *, latest):
    """``epoch-NNNN``, or ``epoch-NNNN-<hex>`` when a folder that is not ours bears that name."""
    name = f"epoch-{epoch:04d}"
    if name in written and name != latest:
        remove_folder(directory / name)  # ours, left by a process killed before LATEST named it
    while os.path.lexists(directory / name):  # the user's, never touched (or ours, and could not be removed)
        name = f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}"
    return name


def remove_older(directory, folder_lock, *, keep):
    """Remove the folders this package wrote here but ``keep``: the older checkpoints, and what killed
    writes left."""
    for name in folder_lock.written:
        if name != keep:
            remove_folder(directory / name)
        remove_partials(directory, name)
    remove_partials(directory, LATEST)
    remove_partials(directory, INDEX)
    left = [name for name in folder_lock.written if name == keep or os.path.lexists(directory / name)]
    if left != folder_lock.written:
        write_index(directory, left)
        folder_lock.written = left
