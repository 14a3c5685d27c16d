"""Where a model comes from, checked before any model code is imported:
a model folder or an HF hub id (:func:`export_source`), and the back-ends
that run it. ``mtmm predict|serve`` answer a wrong ``--model`` from here,
without importing torch; :mod:`.loading` and :mod:`.recognizer` use it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: What runs a model: PyTorch, or its ONNX graphs (``mtmm export --onnx``)
BACKENDS = ("torch", "onnx", "onnx-int8")


class ExportLoadError(ValueError):
    """An export that cannot be loaded; the one-line message names the
    file or source and what to do."""


def export_source(source):
    """A model source as :func:`.loading.fetch_file` takes it: an
    existing folder (absolute), else a hub id.

    Arguments
    ---------
    source : str or path-like
        A model folder or an HF hub id (``org/name``).

    Returns
    -------
    str
        The absolute folder, or the hub id as given.

    Raises
    ------
    ExportLoadError
        A file, or a path that is neither a folder nor a hub id.

    Example
    -------
    >>> export_source("org/emotion-model")
    'org/emotion-model'
    >>> export_source("/no/such/folder")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: /no/such/folder: \
no such folder (nor an HF hub id, org/name); give a model folder written \
by mtmm export or a hub id
    """
    text = str(source)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    if folder.exists():
        raise ExportLoadError(
            f"{text}: a file, not a model folder; give the folder written "
            "by mtmm export (or a hub id)"
        )
    if not HUB_ID.match(text):
        raise ExportLoadError(
            f"{text}: no such folder (nor an HF hub id, org/name); give a "
            "model folder written by mtmm export or a hub id"
        )
    return text
