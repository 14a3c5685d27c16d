"""One writer per folder: an exclusive lock held while a process writes.

A training run folder and a sweep folder each have one writer. A second
process started on the same folder (a second ``train.py``, a restarted
CV runner whose old child still trains) is refused with a one-line error
naming the process that holds the folder, instead of both writing the
same checkpoints and logs.

The lock is an advisory ``flock`` on a small file in the folder, written
here because neither SpeechBrain nor the standard library offers one
(``filelock`` would be a new dependency for 40 lines). The kernel
releases it when its process ends, however it ends (SIGKILL, OOM, power
cut of a node), so a lock is never left stale by a dead process; the file
keeps the holder's pid, host and start time, which the next holder reports
when it takes over a folder whose last writer ended without releasing it.
On systems without ``fcntl`` (Windows) folders are not locked, and this is
logged. Processes forked by the holder (DataLoader workers) share the
lock: after a SIGKILL of the holder it is free once they have noticed
and ended too (PyTorch's workers check every few seconds).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import datetime
import logging
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)


class FolderBusyError(RuntimeError):
    """Another live process holds the folder's lock; the message names it
    (and ``holder`` holds its pid, host and start time)."""

    holder = "another process"


class FolderLock:
    """An exclusive, non-blocking lock on a folder.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder (created if needed).
    name : str
        The lock file's name in it.
    what : str
        What the folder is, for the messages ("run folder", "sweep").
    remove : bool
        Delete the lock file on release (a lock beside a folder, not in
        it: nothing is left behind). A process that opened the file just
        before it was deleted sees that it locked a deleted file and takes
        the lock again on the new one.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "run"
    >>> with FolderLock(folder, "run.lock") as lock:
    ...     FolderLock(folder, "run.lock").acquire()
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.locks.FolderBusyError: ...run: this run folder is in \
use by process ... since ...; wait for it to end or end it
    >>> with FolderLock(folder, "run.lock"):  # released: free again
    ...     pass
    """

    def __init__(self, folder, name, what="run folder", remove=False):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what = what
        self.remove = remove
        self.fd = None

    def acquire(self):
        """Takes the lock, or raises naming the process that holds it.

        Returns
        -------
        FolderLock
            Itself.

        Raises
        ------
        FolderBusyError
            When another process (or another lock object) holds it.
        """
        if fcntl is None:  # pragma: no cover - Windows
            logger.warning(f"{self.folder}: folders cannot be locked here")
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = self._lock()
        try:
            previous = _read(fd)
            if previous:
                logger.warning(
                    f"{self.folder}: taking over from {previous}, which "
                    "ended without releasing it"
                )
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(
                fd,
                f"process {os.getpid()} on {socket.gethostname()} "
                f"since {stamp}\n".encode(),
                0,
            )
            os.fsync(fd)
        except BaseException:  # e.g. a full disk: release, then report
            os.close(fd)
            raise
        self.fd = fd
        return self

    def _lock(self):
        """The locked file's descriptor (the file as it is now, not one
        deleted by a holder releasing it meanwhile)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd) or "another process"
                os.close(fd)
                error = FolderBusyError(
                    f"{self.folder}: this {self.what} is in use by {holder}; "
                    "wait for it to end or end it"
                )
                error.holder = holder
                raise error from None
            except BaseException:  # e.g. no locks on this file system
                os.close(fd)
                raise
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                return fd
            os.close(fd)  # deleted by its last holder: lock the new one

    def release(self):
        """Releases the lock (emptying the file: a clean end; deleting it
        with ``remove``)."""
        if self.fd is None:
            return
        if self.remove:  # still locked: no one can take the old file
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    @property
    def held(self):
        """Whether this object holds the lock."""
        return self.fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read(fd):
    """The holder line written in a lock file ("" when empty)."""
    return os.pread(fd, 200, 0).decode(errors="replace").strip()
