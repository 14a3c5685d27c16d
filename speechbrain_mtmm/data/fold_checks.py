"""Protocol facts checked, not trusted: the splits of a fold share no
speaker and no audio, whoever wrote the fold files.

A fold's split files (``folds/<protocol>/fold_<k>/*.json``) are written by
a preparation, but they are plain JSON: a hand-edited file, a copied
folder or a corpus listing one recording twice would otherwise train on
what the test then scores, and the results would read as
speaker-independent. :func:`check_fold_files` reads the fold as a run will
and stops, in one line naming the file, on

* a speaker in two of its splits, for the protocols that promise
  speaker-independent folds (:data:`SPEAKER_INDEPENDENT`, and any protocol
  not named below); with the ``session`` protocol, also a test session
  that the training or validation split holds. Speakers unknown to the
  corpus (``Unknown``, empty) are nobody in particular and are not
  compared;
* a corpus' own split (:data:`CORPUS_SPLITS`: MSP-Podcast's release split,
  a CSV's ``split`` column), which aims at, but cannot promise, speaker
  independence: shared speakers are a warning with the count; a CSV row
  moved to another split's file is an error;
* the same audio in a training or validation split and in any other split
  (one utterance id in two files, one path under two ids, or two files of
  the same content). The same audio twice inside one split, or in two test
  sets, is a warning (it weighs or scores that recording twice, but no
  model sees its test audio).

Content is compared cheaply: file sizes first; only files of equal size
are read, first their first block, then, where those agree, the whole file
(SHA-256). Nothing in the standard library or SpeechBrain does this; it is
ours.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json
import os
from collections import defaultdict

from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.folds import SPLITS, FoldError, fold_paths

logger = get_logger(__name__)

#: Protocols whose folds share no speaker between splits (so does any
#: protocol not named in CORPUS_SPLITS or NOT_SPEAKER_INDEPENDENT)
SPEAKER_INDEPENDENT = ("speaker", "session")
#: A corpus' own split: shared speakers are reported, not refused
CORPUS_SPLITS = ("official", "split")
#: Declared at preparation not to be speaker-independent
NOT_SPEAKER_INDEPENDENT = ("utterance",)
#: Speaker ids that name nobody in particular
UNKNOWN_SPEAKERS = ("", "unknown", "none", "null")
#: The splits a model learns from or is selected on
MODEL_SPLITS = ("train", "valid")
#: How many shared speakers or files a message shows
SHOWN = 5
#: Bytes read of each file of a shared size before the whole file
HEAD_BYTES = 4096


def fold_files(save_folder, protocol, fold):
    """The split files of one fold: train, valid, test and any other test
    set beside them (MSP-Podcast's ``test2.json``).

    Arguments
    ---------
    save_folder : str or os.PathLike
        The prepared folder.
    protocol : str
        The protocol.
    fold : int
        The fold.

    Returns
    -------
    dict
        Split name -> path, train, valid and test first.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> paths = fold_paths(folder, "official", 1)
    >>> os.makedirs(os.path.dirname(paths["test"]))
    >>> for name in ("train", "valid", "test", "test2"):
    ...     _ = (folder / "folds/official/fold_1" / f"{name}.json").write_text(
    ...         "{}")
    >>> list(fold_files(folder, "official", 1))
    ['train', 'valid', 'test', 'test2']
    """
    paths = fold_paths(save_folder, protocol, fold)
    folder = os.path.dirname(paths["test"])
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            split = name[: -len(".json")]
            if name.endswith(".json") and split not in paths:
                paths[split] = os.path.join(folder, name)
    return paths


def _read_split(path):
    """A split file's entries, or a FoldError naming it."""
    try:
        with open(path, encoding="utf-8") as fin:
            data = json.load(fin)
    except (OSError, ValueError) as error:
        raise FoldError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, dict) or not all(
        isinstance(e, dict) for e in data.values()
    ):
        raise FoldError(f"{path}: not a manifest ({{id: {{fields}}}})")
    return data


def _listing(items):
    """The first SHOWN items, comma-separated, and how many more."""
    items = [str(i) for i in items]
    more = len(items) - SHOWN
    return ", ".join(items[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def _known_speakers(entries, key="speaker"):
    """The known values of ``key`` (speakers, sessions) of a split."""
    found = {e.get(key) for e in entries.values()}
    return {
        s
        for s in found
        if s is not None and str(s).strip().lower() not in UNKNOWN_SPEAKERS
    }


def _pairs(splits):
    """Split pairs that must not share: a model split and any later one."""
    names = list(splits)
    return [
        (first, second)
        for i, first in enumerate(names)
        for second in names[i + 1 :]
        if first in MODEL_SPLITS
    ]


def shared_speakers(splits, protocol, paths):
    """Refuses (or, for a corpus' own split, reports) speakers in two
    splits of a fold.

    Arguments
    ---------
    splits : dict
        Split name -> entries (each with ``speaker``, and ``session`` for
        the ``session`` protocol).
    protocol : str
        The fold's protocol.
    paths : dict
        Split name -> its file (for the messages).

    Returns
    -------
    list of str
        The warnings given (for a corpus' own split).

    Raises
    ------
    FoldError
        Naming the file, the other split and the shared speakers.

    Example
    -------
    >>> splits = {"train": {"a1": {"speaker": "a"}, "b1": {"speaker": "b"}},
    ...           "valid": {"c1": {"speaker": "c"}},
    ...           "test": {"b2": {"speaker": "b"}}}
    >>> paths = {s: f"f/{s}.json" for s in splits}
    >>> shared_speakers(splits, "speaker", paths)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.folds.FoldError: f/test.json: speaker(s) b also \
in train (f/train.json): the speaker protocol shares no speaker between \
the splits of a fold; restore the file or prepare the corpus again
    >>> shared_speakers(splits, "official", paths)
    ['f/test.json: 1 speaker(s) also in train (b): the official split is \
not speaker-independent']
    """
    if protocol in NOT_SPEAKER_INDEPENDENT:
        return []
    warnings = []
    keys = ["speaker"] + (["session"] if protocol == "session" else [])
    for key in keys:
        for first, second in _pairs(splits):
            if key == "session" and second in MODEL_SPLITS:
                continue  # the session protocol validates inside training
            shared = sorted(
                _known_speakers(splits[first], key)
                & _known_speakers(splits[second], key),
                key=str,
            )
            if not shared:
                continue
            if protocol in CORPUS_SPLITS:
                warnings.append(
                    f"{paths[second]}: {len(shared)} {key}(s) also in "
                    f"{first} ({_listing(shared)}): the {protocol} split is "
                    "not speaker-independent"
                )
                continue
            raise FoldError(
                f"{paths[second]}: {key}(s) {_listing(shared)} also in "
                f"{first} ({paths[first]}): the {protocol} protocol shares "
                f"no {key} between the splits of a fold; restore the file "
                "or prepare the corpus again"
            )
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _head_digest(path):
    """SHA-256 of the first HEAD_BYTES of a file."""
    with open(path, "rb") as fin:
        return hashlib.sha256(fin.read(HEAD_BYTES)).hexdigest()


def _file_digest(path):
    """SHA-256 of a whole file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fin:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _refine(groups, key):
    """Splits every group of paths by ``key(path)``; keeps groups of 2+."""
    refined = []
    for paths in groups:
        by_key = defaultdict(list)
        for path in paths:
            by_key[key(path)].append(path)
        refined += [p for p in by_key.values() if len(p) > 1]
    return refined


def same_audio(splits):
    """Groups of utterances whose audio is the same file or the same
    content.

    Arguments
    ---------
    splits : dict
        Split name -> entries (with ``wav``); a file that does not exist is
        compared by path only.

    Returns
    -------
    list of list
        Each group: the ``(split, utterance id)`` pairs of one recording
        (2 or more), in split and id order.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> for name, data in (("a", b"x" * 9), ("b", b"y" * 9), ("c", b"x" * 9)):
    ...     _ = (folder / name).write_bytes(data)
    >>> splits = {"train": {"u1": {"wav": str(folder / "a")},
    ...                     "u2": {"wav": str(folder / "b")}},
    ...           "test": {"u3": {"wav": str(folder / "c")}}}
    >>> same_audio(splits)
    [[('train', 'u1'), ('test', 'u3')]]
    """
    by_path = defaultdict(list)
    for split, entries in splits.items():
        for utt, entry in entries.items():
            if entry.get("wav"):
                by_path[os.path.realpath(entry["wav"])].append((split, utt))
    sizes = defaultdict(list)
    for path in by_path:
        try:
            sizes[os.path.getsize(path)].append(path)
        except OSError:
            continue  # not here: compared by path only
    same = [p for p in sizes.values() if len(p) > 1]
    same = _refine(same, _head_digest)
    same = _refine(same, _file_digest)
    merged = {path: group[0] for group in same for path in group}
    groups = defaultdict(list)
    for path, owners in by_path.items():
        groups[merged.get(path, path)] += owners
    order = {split: i for i, split in enumerate(splits)}
    return [
        sorted(g, key=lambda o: (order[o[0]], o[1]))
        for g in groups.values()
        if len(g) > 1
    ]


def _described(owners):
    """``u1 (train), u3 (test)``."""
    return ", ".join(f"{utt} ({split})" for split, utt in owners)


def check_same_audio(splits, paths):
    """Refuses audio shared by a training or validation split and another
    split; reports audio repeated inside one split or between test sets.

    Arguments
    ---------
    splits : dict
        Split name -> entries (with ``wav``).
    paths : dict
        Split name -> its file (for the messages).

    Returns
    -------
    list of str
        The warnings given.

    Raises
    ------
    FoldError
        Naming both utterances and their split files.

    Example
    -------
    >>> splits = {"train": {"u1": {"wav": "/x/a.wav"}},
    ...           "test": {"u2": {"wav": "/x/a.wav"}}}
    >>> check_same_audio(splits, {"train": "f/train.json",
    ...                           "test": "f/test.json"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.folds.FoldError: f/test.json: u2 is the audio of \
u1 in train (f/train.json; the same file: /x/a.wav): a model would be \
tested on audio it learnt from; remove one of them
    """
    groups = same_audio(splits)
    warnings = []
    for owners in groups:
        found = {split for split, _ in owners}
        learnt = [o for o in owners if o[0] in MODEL_SPLITS]
        others = [o for o in owners if o[0] != learnt[0][0]] if learnt else []
        if learnt and others:
            (split_a, utt_a), (split_b, utt_b) = learnt[0], others[0]
            wavs = {
                os.path.realpath(splits[s][u]["wav"])
                for s, u in (learnt[0], others[0])
            }
            how = (
                f"the same file: {wavs.pop()}"
                if len(wavs) == 1
                else "the same content"
            )
            what = (
                f"{utt_b} is also in {split_a}"
                if utt_a == utt_b
                else f"{utt_b} is the audio of {utt_a} in {split_a}"
            )
            raise FoldError(
                f"{paths[split_b]}: {what} ({paths[split_a]}; {how}): a "
                "model would be tested on audio it learnt from; remove one "
                "of them"
            )
        warnings.append(
            f"{' and '.join(paths[s] for s in sorted(found))}: "
            f"{_described(owners)} are the same audio (counted "
            f"{len(owners)} times)"
        )
    for warning in warnings:
        logger.warning(warning)
    return warnings


def check_split_column(splits, protocol, paths):
    """With a corpus' ``split`` column, every row lies in its split's file.

    Arguments
    ---------
    splits : dict
        Split name -> entries.
    protocol : str
        The fold's protocol (only ``split`` is checked).
    paths : dict
        Split name -> its file.

    Example
    -------
    >>> check_split_column({"test": {"u1": {"split": "train"}}}, "split",
    ...                    {"test": "t.json"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.folds.FoldError: t.json: u1 is a train row of \
the corpus; restore the file or prepare the corpus again
    """
    if protocol != "split":
        return
    for split, entries in splits.items():
        for utt, entry in entries.items():
            if entry.get("split", split) != split:
                raise FoldError(
                    f"{paths[split]}: {utt} is a {entry['split']} row of the "
                    "corpus; restore the file or prepare the corpus again"
                )


def check_fold_files(save_folder, protocol, fold):
    """Checks the split files of one fold before a run reads them: no
    speaker (or test session) and no audio shared across its splits (see
    the module docstring).

    Arguments
    ---------
    save_folder : str or os.PathLike
        The prepared folder.
    protocol : str
        The fold's protocol.
    fold : int
        The fold.

    Returns
    -------
    list of str
        The warnings given; ``None`` when the fold is not prepared yet
        (its train, valid or test file is missing).

    Raises
    ------
    FoldError
        In one line, naming the split file and what it shares.

    Example
    -------
    >>> from speechbrain_mtmm.data.folds import write_protocol
    >>> folder = getfixture("tmp_path")
    >>> manifest = {f"u{s}": {"speaker": s} for s in "abc"}
    >>> folds = {1: {"train": ["a"], "valid": ["b"], "test": ["c"]}}
    >>> write_protocol(manifest, folder, "speaker", folds)
    >>> check_fold_files(folder, "speaker", 1)
    []
    >>> check_fold_files(folder, "speaker", 2) is None
    True
    """
    paths = fold_files(save_folder, protocol, fold)
    if not all(os.path.isfile(paths[split]) for split in SPLITS):
        return None
    splits = {split: _read_split(path) for split, path in paths.items()}
    check_split_column(splits, protocol, paths)
    warnings = shared_speakers(splits, protocol, paths)
    return warnings + check_same_audio(splits, paths)
