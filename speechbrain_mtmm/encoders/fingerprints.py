"""Encoder fingerprints kept by the identity of the files they come from.

An encoder's fingerprint (:meth:`~speechbrain_mtmm.encoders.base.Encoder.
fingerprint`) hashes every byte of its weights: about 2 s for
HuBERT-large + DeBERTaV3-large on a CPU, paid by every run that keys the
feature cache or checks a checkpoint's frozen encoders. An encoder loaded
from files and left unchanged has the weights those files decide, so its
fingerprint is computed once and kept here, under a key made of what the
encoder is besides its weights (class, config, preprocessing, loading
options, the torch and transformers versions) and the identity of each
file of its folder: name, size, modification time (ns) and inode. A file
that is replaced or rewritten gets another identity, so the fingerprint is
computed again from the weights; an unchanged folder is never read again.

The store is one small JSON file, ``$MTMM_FINGERPRINT_CACHE`` (default
``$XDG_CACHE_HOME/speechbrain_mtmm/fingerprints.json``, i.e.
``~/.cache/...``); ``MTMM_FINGERPRINT_CACHE=off`` disables it. It is
rewritten atomically; two processes writing at once at worst lose one
entry, which is then recomputed. Written here because neither SpeechBrain
nor huggingface_hub keep digests of loaded weights.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json
import os
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from speechbrain_mtmm.atomic import write_json

#: Environment variable naming the store (``off``: no store)
STORE_VARIABLE = "MTMM_FINGERPRINT_CACHE"
#: Entries kept (the oldest go first)
MAX_ENTRIES = 256


def file_identities(folder):
    """The identity of every file at the top of a folder.

    Arguments
    ---------
    folder : str or path-like
        A model folder (symbolic links, as in the HF cache, are followed).

    Returns
    -------
    list of list
        ``[name, size, mtime_ns, inode]`` per regular file, by name.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "model.safetensors").write_bytes(b"1234")
    >>> [(name, size) for name, size, *_ in file_identities(folder)]
    [('model.safetensors', 4)]
    """
    identities = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stat = os.stat(entry.path)
        identities.append(
            [entry.name, stat.st_size, stat.st_mtime_ns, stat.st_ino]
        )
    return identities


def identity_key(what, folder):
    """The store key of an encoder loaded from ``folder``.

    Arguments
    ---------
    what : str
        Everything besides the weight files that decides the fingerprint
        (class, config, preprocessing, loading options, versions).
    folder : str or path-like
        Where its weights were loaded from.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "w.bin").write_bytes(b"1")
    >>> key = identity_key("x", folder)
    >>> key == identity_key("x", folder), key == identity_key("y", folder)
    (True, False)
    """
    text = json.dumps(
        [what, str(Path(folder).resolve()), file_identities(folder)]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_folder(source, cache_dir=None, options=None, info=None):
    """The folder an HF model's weights were loaded from, when they are
    the files' alone.

    Arguments
    ---------
    source : str
        A local folder or a hub id (then its snapshot in the HF cache).
    cache_dir : str, optional
        The HF cache of hub downloads (None: the default one).
    options : dict, optional
        ``from_pretrained`` options (``revision`` picks the snapshot).
    info : dict, optional
        ``from_pretrained``'s loading info: weights missing from the files
        (initialised at random) or of another shape mean None.

    Returns
    -------
    str or None

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> weights_folder(folder) == folder
    True
    >>> weights_folder(folder, info={"missing_keys": ["w"]}) is None
    True
    """
    info = info or {}
    if info.get("missing_keys") or info.get("mismatched_keys"):
        return None
    if os.path.isdir(source):
        return source
    options = options or {}
    try:
        found = try_to_load_from_cache(
            source,
            "config.json",
            cache_dir=cache_dir,
            revision=options.get("revision"),
        )
    except ValueError:  # not a hub id
        return None
    return os.path.dirname(found) if isinstance(found, str) else None


class FingerprintStore:
    """Fingerprints by identity key, in one JSON file.

    Arguments
    ---------
    path : str or path-like, optional
        The file (default: :func:`default_store_path`); None and no
        default: nothing is kept.

    Example
    -------
    >>> store = FingerprintStore(getfixture("tmp_path") / "f.json")
    >>> store.get("k") is None
    True
    >>> store.put("k", "ab" * 32)
    >>> FingerprintStore(store.path).get("k") == "ab" * 32
    True
    """

    def __init__(self, path=None):
        self.path = None if path is None else Path(path)

    def _read(self):
        if self.path is None:
            return {}
        try:
            with open(self.path, encoding="utf-8") as fin:
                entries = json.load(fin)
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, key):
        """The fingerprint stored under ``key``, or None."""
        value = self._read().get(key)
        return value if isinstance(value, str) else None

    def put(self, key, fingerprint):
        """Stores a fingerprint (silently kept in memory only when the
        file cannot be written: it is a cache)."""
        if self.path is None:
            return
        entries = self._read()
        entries.pop(key, None)
        entries[key] = fingerprint
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, entries)
        except OSError:
            pass


def default_store_path():
    """Where fingerprints are kept (see the module docstring).

    Returns
    -------
    pathlib.Path or None
        None when ``MTMM_FINGERPRINT_CACHE=off``.

    Example
    -------
    >>> getfixture("monkeypatch").delenv(STORE_VARIABLE, raising=False)
    >>> default_store_path().name
    'fingerprints.json'
    """
    value = os.environ.get(STORE_VARIABLE)
    if value == "off":
        return None
    if value:
        return Path(value)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "speechbrain_mtmm" / "fingerprints.json"
