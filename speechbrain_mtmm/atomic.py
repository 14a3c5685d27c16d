"""Atomic file writes: a file is either complete or absent, never partial.

A killed run, preparation or cache build must leave nothing half-written
that a rerun would read as finished. Every writer here writes to a
temporary name beside the target (``<name>.<pid>.tmp``, so concurrent
writers never share one) and renames it into place with ``os.replace``,
which is atomic on POSIX and Windows. Python's standard library has no such
helper, nor does SpeechBrain, hence these few lines.

A write the system refuses (a full disk, a read-only folder) removes its
temporary file and raises :class:`WriteError`, one line naming the file
and what to do (:func:`write_error`); :func:`write_problem` tells why a
folder cannot be written when a writer that reports no cause failed
(torch's zip writer raises a ``RuntimeError`` without the system's error).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import errno
import json
import os

import numpy as np

#: System errors that mean the disk, not the program: no space left
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: ... and a folder that cannot be written
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class WriteError(OSError):
    """A file or folder the system would not let us write (disk full,
    read-only); the message names it and says what to do."""


def write_error(
    path, error, doing="writing", then="run the same command again"
):
    """The one-line :class:`WriteError` for a system error of the disk.

    Arguments
    ---------
    path : str or path-like
        What was written (a file or a folder), named in the message.
    error : OSError
        The system's error.
    doing : str
        What was being done, for the message.
    then : str
        What to do once there is room again.

    Returns
    -------
    WriteError or None
        None when ``error`` is not a full disk or a folder that cannot be
        written (a programming error keeps its traceback).

    Example
    -------
    >>> full = OSError(errno.ENOSPC, "No space left on device")
    >>> print(write_error("/data/run/save", full, "saving a checkpoint"))
    /data/run/save: disk full while saving a checkpoint (No space left on \
device); free some space, then run the same command again
    >>> write_error("x", OSError(errno.EBADF, "Bad file descriptor"))
    """
    if isinstance(error, WriteError):
        return error
    reason = error.strerror or str(error)
    if error.errno in DISK_FULL:
        report = WriteError(
            f"{path}: disk full while {doing} ({reason}); free some space, "
            f"then {then}"
        )
    elif error.errno in NOT_WRITABLE:
        report = WriteError(
            f"{path}: cannot be written ({reason}): the folder is read-only "
            "or not yours; give a folder you can write to"
        )
    else:
        return None
    report.errno = error.errno
    return report


def write_problem(folder):
    """Why ``folder`` cannot be written now, found by writing a small file.

    For writers that fail without the system's error: torch's zip writer
    raises ``RuntimeError("... unexpected pos ...")`` on a full disk.

    Arguments
    ---------
    folder : str or path-like
        An existing folder.

    Returns
    -------
    OSError or None
        The system's error, or None when a 4 KiB file could be written.

    Example
    -------
    >>> write_problem(getfixture("tmp_path")) is None
    True
    """
    probe = os.path.join(os.fspath(folder), f".write-probe.{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        return error
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
    return None


def _tmp(path):
    return f"{path}.{os.getpid()}.tmp"


@contextlib.contextmanager
def _replacing(path):
    """A temporary file beside ``path``, renamed onto it at the end;
    removed, and a system refusal reported as :class:`WriteError`
    (naming ``path``), when writing it fails."""
    folder = os.path.dirname(os.fspath(path))
    tmp = _tmp(path)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        report = None
        if isinstance(error, OSError):
            report = write_error(path, error)
        if report is None:
            raise
        raise report from None


def write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically.

    Arguments
    ---------
    path : str or path-like
        The file; its folder is created if needed.
    text : str
        The content.

    Raises
    ------
    WriteError
        When the disk is full or the folder cannot be written; nothing
        is left behind (an older ``path`` stays as it was).

    Example
    -------
    >>> path = getfixture("tmp_path") / "sub" / "a.txt"
    >>> write_text(path, "hello")
    >>> path.read_text()
    'hello'
    """
    with _replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fout:
            fout.write(text)


def write_json(path, data, sort_keys=False):
    """Writes ``data`` as indented JSON (UTF-8, newline-terminated)
    atomically.

    Arguments
    ---------
    path : str or path-like
        The file.
    data : object
        Anything ``json.dumps`` takes.
    sort_keys : bool
        Sort the keys of every mapping.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.json"
    >>> write_json(path, {"b": 1, "a": "é"}, sort_keys=True)
    >>> print(path.read_text(encoding="utf-8"), end="")
    {
      "a": "é",
      "b": 1
    }
    """
    text = json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=False)
    write_text(path, text + "\n")


def save_array(path, array):
    """Saves a numpy array (``np.save`` format) atomically.

    Arguments
    ---------
    path : str or path-like
        The ``.npy`` file.
    array : numpy.ndarray
        The array.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.npy"
    >>> save_array(path, np.arange(3))
    >>> np.load(path).tolist()
    [0, 1, 2]
    """
    with _replacing(path) as tmp:
        with open(tmp, "wb") as fout:
            np.save(fout, array)
