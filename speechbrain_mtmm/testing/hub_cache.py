"""A model folder laid out in a HuggingFace hub cache, offline.

Tests (and benchmarks) load an export by hub id without network: the
folder is written into a hub cache exactly as ``huggingface_hub``'s
``hf_hub_download`` leaves a downloaded repository (``file_download.py``,
``constants.py``)::

    <cache>/models--<org>--<name>/
        blobs/<etag>                   the bytes: sha256 of the content for
                                       LFS files, the git blob sha1 of the
                                       content for the others
        snapshots/<revision>/<path>    relative symlinks to the blobs
                                       (copies where symlinks are off)
        refs/main                      the revision (40 hex digits, no
                                       newline)

With ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=<cache>``, ``hf_hub_download``
(hence SpeechBrain's ``fetch``) resolves ``<org>/<name>`` to the snapshot
without any request. ``huggingface_hub`` reads both variables when it is
imported: :func:`offline_hub_env` gives the environment for a subprocess,
and in-process tests also set ``huggingface_hub.constants.HF_HUB_CACHE``
and ``HF_HUB_OFFLINE`` (which it reads at every call).

Written here because huggingface_hub only fills its cache from the hub.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import os
import shutil
from pathlib import Path

#: Files the hub stores with git LFS by default (``.gitattributes`` of a
#: new repository) or because they are large
LFS_SUFFIXES = (
    ".bin",
    ".ckpt",
    ".data",
    ".h5",
    ".model",
    ".onnx",
    ".pt",
    ".pth",
    ".safetensors",
)
LFS_MIN_BYTES = 10 * 2**20
REPO_ID_SEPARATOR = "--"  # huggingface_hub.constants
DEFAULT_REVISION = "main"


def blob_name(path):
    """The etag the hub gives a file, hence its blob's name in the cache.

    Arguments
    ---------
    path : pathlib.Path
        The file.

    Returns
    -------
    str
        SHA-256 of the bytes for LFS files, else the git blob SHA-1.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.txt"
    >>> _ = path.write_bytes(b"hello\\n")
    >>> blob_name(path)  # git hash-object a.txt
    'ce013625030ba8dba906f756967f9e9ca394464a'
    """
    data = Path(path).read_bytes()
    if path.suffix in LFS_SUFFIXES or len(data) >= LFS_MIN_BYTES:
        return hashlib.sha256(data).hexdigest()
    header = f"blob {len(data)}\0".encode()
    return hashlib.sha1(header + data).hexdigest()


def lay_out_hub_cache(folder, cache, repo_id, revision=None, symlinks=True):
    """Writes a folder into a hub cache as a downloaded model repository.

    Arguments
    ---------
    folder : str or path-like
        The repository's files (an export).
    cache : str or path-like
        The hub cache (``HF_HUB_CACHE``); created if needed.
    repo_id : str
        ``org/name``.
    revision : str, optional
        The commit (40 hex digits; default: derived from the files).
    symlinks : bool
        Snapshot entries as relative symlinks to the blobs (the hub's
        default); False: copies (its layout without symlink support).

    Returns
    -------
    pathlib.Path
        The snapshot folder.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> (tmp / "model" / "sub").mkdir(parents=True)
    >>> _ = (tmp / "model" / "sub" / "a.json").write_text("{}")
    >>> snapshot = lay_out_hub_cache(tmp / "model", tmp / "hub", "org/m")
    >>> snapshot.relative_to(tmp / "hub").parts[:2]
    ('models--org--m', 'snapshots')
    >>> (snapshot / "sub" / "a.json").is_symlink()
    True
    >>> (tmp / "hub/models--org--m/refs/main").read_text() == snapshot.name
    True
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    names = {p.relative_to(folder).as_posix(): blob_name(p) for p in files}
    if revision is None:
        listing = "".join(f"{k} {v}\n" for k, v in names.items())
        revision = hashlib.sha1(listing.encode()).hexdigest()
    repo = Path(cache) / REPO_ID_SEPARATOR.join(["models", *repo_id.split("/")])
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        name = path.relative_to(folder).as_posix()
        blob = repo / "blobs" / names[name]
        if not blob.exists():
            shutil.copyfile(path, blob)
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.exists() or pointer.is_symlink():
            pointer.unlink()
        if symlinks:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        else:
            shutil.copyfile(blob, pointer)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / DEFAULT_REVISION).write_text(revision)
    return snapshot


def offline_hub_env(cache):
    """Environment variables that make huggingface_hub use only ``cache``.

    Arguments
    ---------
    cache : str or path-like
        The hub cache of :func:`lay_out_hub_cache`.

    Returns
    -------
    dict
        ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``.

    Example
    -------
    >>> offline_hub_env("/tmp/hub")["HF_HUB_OFFLINE"]
    '1'
    """
    return {
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
