"""What a prepared folder holds: ``corpus.json``.

Every preparation (``mtmm prepare iemocap|msp-podcast|csv``) describes the
folder it writes, so that a recipe trains on it without being told
again::

    {"corpus": "csv", "manifest": "manifest.json",
     "labels": ["angry", "happy", "neutral", "sad"],
     "dimensions": ["valence", "arousal"], "rating_scale": [1.0, 5.0],
     "protocols": {"speaker": 5}, "source": "/data/corpus.csv"}

``labels`` is the class order of the model; ``dimensions`` the ones rated
at least once; ``protocols`` each protocol's number of folds, the first
being the default. A recipe pointed at such a folder
(``--data_folder=<prepared folder>``) takes ``prepare_folder``, ``labels``,
``rating_scale`` and ``protocol`` from it (see
:func:`speechbrain_mtmm.training.hparams.load_recipe_hparams`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import os

from speechbrain_mtmm.atomic import write_json

CORPUS_INFO = "corpus.json"
KEYS = (
    "corpus",
    "manifest",
    "labels",
    "dimensions",
    "rating_scale",
    "protocols",
    "source",
)


class CorpusError(ValueError):
    """A ``corpus.json`` that cannot be used; the message names it."""


def write_corpus_info(save_folder, **info):
    """Writes ``<save_folder>/corpus.json``.

    Arguments
    ---------
    save_folder : str or os.PathLike
        The prepared folder.
    **info
        Every key of :data:`KEYS`.

    Returns
    -------
    str
        The path written.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = write_corpus_info(folder, corpus="csv", manifest="m.json",
    ...     labels=["a", "b"], dimensions=[], rating_scale=None,
    ...     protocols={"speaker": 3}, source="c.csv")
    >>> read_corpus_info(folder)["protocols"]
    {'speaker': 3}
    """
    missing = sorted(set(KEYS) - set(info))
    unknown = sorted(set(info) - set(KEYS))
    if missing or unknown:
        raise CorpusError(f"corpus info: missing {missing}, unknown {unknown}")
    path = os.path.join(str(save_folder), CORPUS_INFO)
    write_json(path, {key: info[key] for key in KEYS})
    return path


def read_corpus_info(folder):
    """The description of a prepared folder, or None for another folder.

    Arguments
    ---------
    folder : str or os.PathLike
        Any folder (an IEMOCAP release, a prepared folder, ...).

    Returns
    -------
    dict or None

    Raises
    ------
    CorpusError
        For a ``corpus.json`` that is not valid JSON or lacks keys.

    Example
    -------
    >>> read_corpus_info(getfixture("tmp_path")) is None
    True
    """
    path = os.path.join(str(folder), CORPUS_INFO)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fin:
            info = json.load(fin)
    except (OSError, ValueError) as error:
        raise CorpusError(f"{path}: cannot be read ({error})") from None
    if not isinstance(info, dict):
        info = {}  # valid JSON, but not a description: every key missing
    missing = [key for key in KEYS if key not in info]
    if missing:
        raise CorpusError(
            f"{path}: missing {', '.join(missing)}; prepare the corpus again"
        )
    return info


def corpus_manifest(folder, info):
    """The path of the whole manifest of a prepared folder.

    Arguments
    ---------
    folder : str or os.PathLike
        The prepared folder.
    info : dict
        Its :func:`read_corpus_info`.

    Returns
    -------
    str

    Example
    -------
    >>> corpus_manifest("p", {"manifest": "m.json"}).replace(os.sep, "/")
    'p/m.json'
    """
    return os.path.join(str(folder), info["manifest"])
