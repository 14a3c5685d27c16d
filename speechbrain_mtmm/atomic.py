"""Atomic file writes: a file is either complete or absent, never partial.

A killed run, preparation or cache build must leave nothing half-written
that a rerun would read as finished. Every writer here writes to a
temporary name beside the target (``<name>.<pid>.tmp``, so concurrent
writers never share one) and renames it into place with ``os.replace``,
which is atomic on POSIX and Windows. Python's standard library has no such
helper, nor does SpeechBrain, hence these few lines.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import os

import numpy as np


def _tmp(path):
    return f"{path}.{os.getpid()}.tmp"


def write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically.

    Arguments
    ---------
    path : str or path-like
        The file; its folder is created if needed.
    text : str
        The content.

    Example
    -------
    >>> path = getfixture("tmp_path") / "sub" / "a.txt"
    >>> write_text(path, "hello")
    >>> path.read_text()
    'hello'
    """
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as fout:
        fout.write(text)
    os.replace(tmp, path)


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
    tmp = _tmp(path)
    with open(tmp, "wb") as fout:
        np.save(fout, array)
    os.replace(tmp, path)
