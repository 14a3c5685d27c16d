"""Speaker-independent folds: IEMOCAP's protocols, and k folds over the
speakers of any corpus (:func:`group_folds`).

Two protocols are supported (PAPER.md, section 3); both keep every speaker
in exactly one split of a fold, so no model is ever tested or selected on a
speaker it was trained on:

* ``speaker``: 10 folds, one per speaker in the order Ses01F, Ses01M, ...,
  Ses05M. Fold k tests on the k-th speaker; by default
  (``speaker_valid="same_session"``) the validation speaker is the other
  speaker of the same session; with ``speaker_valid="next_session"`` it is
  the speaker of the same gender in the next session (cyclically). The other
  8 speakers train.
* ``session``: 5 folds, one per session. Fold k tests on both speakers of
  session k; the validation speaker is the female speaker of the next session
  (session k % 5 + 1); the remaining 7 speakers train.

Files written by :func:`write_folds` (each split is a manifest subset in the
manifest's own format)::

    <save_folder>/folds/folds.json
    <save_folder>/folds/<protocol>/fold_<k>/{train,valid,test}.json

Command line (on a manifest written by ``prepare_iemocap``)::

    mtmm folds --manifest <save_folder>/iemocap.json --save_folder <folder>

Authors
 * speechbrain-mtmm contributors
"""

import json
import os
import re

from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.catalog import N_FOLDS, SPEAKER_VALID_RULES

logger = get_logger(__name__)

SPLITS = ("train", "valid", "test")
PROTOCOLS = ("speaker", "session")
FOLDS_DIRNAME = "folds"
FOLDS_INDEX = "folds.json"

_SPEAKER_RE = re.compile(r"^Ses(\d{2})([FM])$")
_PROTOCOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FoldError(ValueError):
    """Raised when folds cannot be built or would mix speakers across splits."""


def load_manifest(manifest):
    """Returns a manifest as a dict, reading it when given a path.

    Arguments
    ---------
    manifest : dict or str or os.PathLike
        A manifest ``{utt_id: {"speaker": ..., ...}}`` or the path of its
        JSON file.

    Returns
    -------
    dict
        The manifest.

    Example
    -------
    >>> load_manifest({"u1": {"speaker": "Ses01F"}})
    {'u1': {'speaker': 'Ses01F'}}
    """
    if isinstance(manifest, dict):
        return manifest
    with open(manifest, encoding="utf-8") as handle:
        return json.load(handle)


def speakers_by_session(speakers):
    """Groups speaker ids (``Ses01F``) by session and gender.

    Arguments
    ---------
    speakers : iterable of str
        Speaker ids, session + gender letter.

    Returns
    -------
    dict
        ``{session: {"F": speaker, "M": speaker}}`` sorted by session.

    Example
    -------
    >>> speakers_by_session(["Ses02M", "Ses01F", "Ses01M", "Ses02F"])
    {1: {'F': 'Ses01F', 'M': 'Ses01M'}, 2: {'F': 'Ses02F', 'M': 'Ses02M'}}
    """
    sessions = {}
    for speaker in sorted(set(speakers)):
        match = _SPEAKER_RE.match(speaker)
        if match is None:
            raise FoldError(f"speaker id {speaker!r} is not of the form Ses01F")
        sessions.setdefault(int(match[1]), {})[match[2]] = speaker
    for session, genders in sessions.items():
        if set(genders) != {"F", "M"}:
            raise FoldError(
                f"session {session} needs one female and one male speaker, "
                f"found {sorted(genders.values())}"
            )
    if len(sessions) < 2:
        raise FoldError("speaker-independent folds need at least 2 sessions")
    return sessions


def _ordered_speakers(sessions):
    """Speakers in fold order: Ses01F, Ses01M, Ses02F, ..."""
    return [sessions[s][g] for s in sessions for g in ("F", "M")]


def _next_session(sessions, session):
    """The session after ``session`` in sorted order, wrapping around."""
    order = list(sessions)
    return order[(order.index(session) + 1) % len(order)]


def _fold(all_speakers, test, valid):
    """One fold as sorted speaker lists; train is everyone else."""
    train = [s for s in all_speakers if s not in test and s not in valid]
    return {
        "train": sorted(train),
        "valid": sorted(valid),
        "test": sorted(test),
    }


def _speaker_protocol(sessions, speaker_valid):
    """Leave-one-speaker-out folds (test = one speaker)."""
    speakers = _ordered_speakers(sessions)
    folds = {}
    for index, test in enumerate(speakers, start=1):
        session, gender = int(test[3:5]), test[5]
        other = "M" if gender == "F" else "F"
        if speaker_valid == "same_session":
            valid = sessions[session][other]
        else:
            valid = sessions[_next_session(sessions, session)][gender]
        folds[index] = _fold(speakers, [test], [valid])
    return folds


def _session_protocol(sessions):
    """Leave-one-session-out folds (valid = next session's female)."""
    speakers = _ordered_speakers(sessions)
    folds = {}
    for index, session in enumerate(sessions, start=1):
        test = list(sessions[session].values())
        valid = [sessions[_next_session(sessions, session)]["F"]]
        folds[index] = _fold(speakers, test, valid)
    return folds


def check_folds(folds, speakers):
    """Checks that every fold splits ``speakers`` into disjoint sets.

    Arguments
    ---------
    folds : dict
        ``{fold: {"train": [...], "valid": [...], "test": [...]}}``.
    speakers : iterable of str
        All speakers; the union of the splits of each fold must equal it.

    Raises
    ------
    FoldError
        If a speaker is in two splits of a fold, a split is empty, or the
        splits do not cover all speakers.

    Example
    -------
    >>> folds = {1: {"train": ["a"], "valid": ["b"], "test": ["a"]}}
    >>> try:
    ...     check_folds(folds, ["a", "b"])
    ... except FoldError as error:
    ...     print(error)
    fold 1: speaker(s) ['a'] in train and test
    """
    speakers = set(speakers)
    for fold, splits in folds.items():
        for i, first in enumerate(SPLITS):
            if not splits[first]:
                raise FoldError(f"fold {fold}: {first} has no speaker")
            for second in SPLITS[i + 1 :]:
                shared = set(splits[first]) & set(splits[second])
                if shared:
                    raise FoldError(
                        f"fold {fold}: speaker(s) {sorted(shared)} in "
                        f"{first} and {second}"
                    )
        union = set().union(*(splits[split] for split in SPLITS))
        if union != speakers:
            raise FoldError(
                f"fold {fold}: splits cover {sorted(union)}, "
                f"expected {sorted(speakers)}"
            )


def make_folds(manifest, protocol="speaker", speaker_valid=None):
    """Builds the speaker sets of every fold of a protocol.

    Arguments
    ---------
    manifest : dict or str or os.PathLike
        Manifest (or its path) whose entries have a ``speaker`` field.
    protocol : str
        ``"speaker"`` (one fold per speaker) or ``"session"`` (one fold per
        session).
    speaker_valid : str, optional
        Validation-speaker rule of the speaker protocol: ``"same_session"``
        (default, the other speaker of the test speaker's session) or
        ``"next_session"`` (the same-gender speaker of the next session).
        Ignored by the session protocol.

    Returns
    -------
    dict
        ``{fold_number: {"train": [...], "valid": [...], "test": [...]}}``
        with sorted speaker lists, fold numbers starting at 1.

    Example
    -------
    >>> manifest = {f"u{s}{g}": {"speaker": f"Ses0{s}{g}"}
    ...             for s in range(1, 6) for g in "FM"}
    >>> folds = make_folds(manifest, "speaker")
    >>> len(folds), folds[3]["test"], folds[3]["valid"]
    (10, ['Ses02F'], ['Ses02M'])
    >>> folds = make_folds(manifest, "session")
    >>> len(folds), folds[5]["test"], folds[5]["valid"], len(folds[5]["train"])
    (5, ['Ses05F', 'Ses05M'], ['Ses01F'], 7)
    """
    manifest = load_manifest(manifest)
    speaker_valid = speaker_valid or "same_session"
    if speaker_valid not in SPEAKER_VALID_RULES:
        raise FoldError(
            f"unknown speaker_valid rule {speaker_valid!r}, "
            f"expected one of {SPEAKER_VALID_RULES}"
        )
    missing = [utt for utt, entry in manifest.items() if "speaker" not in entry]
    if missing:
        raise FoldError(f"manifest entry {missing[0]} has no 'speaker' field")
    speakers = {entry["speaker"] for entry in manifest.values()}
    sessions = speakers_by_session(speakers)
    if protocol == "speaker":
        folds = _speaker_protocol(sessions, speaker_valid)
    elif protocol == "session":
        folds = _session_protocol(sessions)
    else:
        raise FoldError(
            f"unknown protocol {protocol!r}, expected one of {PROTOCOLS}"
        )
    check_folds(folds, speakers)
    return folds


def check_fold(protocol, fold, protocols=None):
    """Stops on a protocol or fold number the prepared data does not have.

    Arguments
    ---------
    protocol : str
        A protocol name (IEMOCAP: ``"speaker"`` or ``"session"``).
    fold : int
        Fold number.
    protocols : dict, optional
        Protocol -> number of folds of a prepared corpus
        (:func:`speechbrain_mtmm.data.corpus.read_corpus_info`); IEMOCAP's
        by default.

    Example
    -------
    >>> check_fold("speaker", 10)
    >>> check_fold("session", 6)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.folds.FoldError: fold 6: the session protocol \
has folds 1-5
    >>> check_fold("official", 1, {"official": 1})
    """
    protocols = N_FOLDS if protocols is None else protocols
    if protocol not in protocols:
        raise FoldError(
            f"unknown protocol {protocol!r}, expected one of {tuple(protocols)}"
        )
    count = protocols[protocol]
    if not isinstance(fold, int) or not 1 <= fold <= count:
        raise FoldError(
            f"fold {fold}: the {protocol} protocol has folds "
            + (f"1-{count}" if count > 1 else "1 only")
        )


def group_folds(sizes, k):
    """Speaker-independent k-fold cross-validation over speaker groups.

    Speakers are dealt, largest first, to the group holding the fewest
    utterances so far, which gives k groups of similar size. Fold ``i``
    tests on group ``i``, validates on group ``i + 1`` (cyclically) and
    trains on the others: every speaker is tested once, and no fold ever
    has a speaker in two of its splits.

    Arguments
    ---------
    sizes : dict
        Speaker -> number of utterances.
    k : int
        Number of folds, at least 3 (test, validation and training each
        need a group) and at most the number of speakers.

    Returns
    -------
    dict
        ``{fold: {"train": [...], "valid": [...], "test": [...]}}``, sorted
        speaker lists, folds from 1.

    Example
    -------
    >>> folds = group_folds({"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}, 3)
    >>> folds[1]
    {'train': ['c', 'd'], 'valid': ['b', 'e'], 'test': ['a']}
    >>> folds[2]["test"], folds[3]["test"]
    (['b', 'e'], ['c', 'd'])
    """
    if not isinstance(k, int) or k < 3:
        raise FoldError(
            f"{k} folds: at least 3 are needed (a test, a validation and a "
            "training group in each fold)"
        )
    if len(sizes) < k:
        raise FoldError(
            f"{k} folds need at least {k} speakers, the corpus has "
            f"{len(sizes)}; ask for fewer folds"
        )
    groups = [[] for _ in range(k)]
    totals = [0] * k
    for speaker in sorted(sizes, key=lambda s: (-sizes[s], s)):
        smallest = min(range(k), key=lambda g: (totals[g], g))
        groups[smallest].append(speaker)
        totals[smallest] += sizes[speaker]
    folds = {}
    for i in range(k):
        test, valid = groups[i], groups[(i + 1) % k]
        train = [
            s
            for j, g in enumerate(groups)
            if j not in (i, (i + 1) % k)
            for s in g
        ]
        folds[i + 1] = {
            "train": sorted(train),
            "valid": sorted(valid),
            "test": sorted(test),
        }
    check_folds(folds, sizes)
    return folds


def write_protocol(manifest, save_folder, protocol, folds, group=None):
    """Writes the split files of every fold of one protocol.

    Arguments
    ---------
    manifest : dict
        ``{utt_id: entry}``.
    save_folder : str or os.PathLike
        Files go to ``<save_folder>/folds/<protocol>/fold_<k>/``.
    protocol : str
        Its name.
    folds : dict
        ``{fold: {split: [group names]}}``.
    group : callable, optional
        ``(utt_id, entry) -> group name``; the entry's speaker by default.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> manifest = {"u1": {"speaker": "a"}, "u2": {"speaker": "b"},
    ...             "u3": {"speaker": "c"}}
    >>> folds = {1: {"train": ["a"], "valid": ["b"], "test": ["c"]}}
    >>> write_protocol(manifest, tmp, "mine", folds)
    >>> load_manifest(fold_paths(tmp, "mine", 1)["valid"])
    {'u2': {'speaker': 'b'}}
    """
    group = group or (lambda utt, entry: entry["speaker"])
    for fold, splits in folds.items():
        paths = fold_paths(save_folder, protocol, fold)
        for split in SPLITS:
            members = set(splits[split])
            subset = {
                utt: entry
                for utt, entry in manifest.items()
                if group(utt, entry) in members
            }
            write_json(paths[split], subset, sort_keys=True)


def fold_paths(save_folder, protocol, fold):
    """Paths of the train/valid/test manifests of one fold.

    Arguments
    ---------
    save_folder : str or os.PathLike
        The folder given to ``prepare_iemocap`` / :func:`write_folds`.
    protocol : str
        A protocol name (IEMOCAP: ``"speaker"`` or ``"session"``).
    fold : int
        Fold number, starting at 1.

    Returns
    -------
    dict
        ``{"train": path, "valid": path, "test": path}`` (strings).

    Example
    -------
    >>> paths = fold_paths("out", "speaker", 3)
    >>> paths["test"].replace(os.sep, "/")
    'out/folds/speaker/fold_3/test.json'
    """
    if not _PROTOCOL_RE.match(str(protocol)):
        raise FoldError(f"{protocol!r} is not a protocol name")
    folder = os.path.join(
        str(save_folder), FOLDS_DIRNAME, protocol, f"fold_{int(fold)}"
    )
    return {split: os.path.join(folder, f"{split}.json") for split in SPLITS}


def folds_index_path(save_folder):
    """Path of ``<save_folder>/folds/folds.json``.

    Arguments
    ---------
    save_folder : str or os.PathLike
        The preparation folder.

    Returns
    -------
    str
        The path of the index naming the speakers of every split.

    Example
    -------
    >>> folds_index_path("out").replace(os.sep, "/")
    'out/folds/folds.json'
    """
    return os.path.join(str(save_folder), FOLDS_DIRNAME, FOLDS_INDEX)


def read_folds(save_folder):
    """Reads the fold index written by :func:`write_folds`.

    Arguments
    ---------
    save_folder : str or os.PathLike
        The preparation folder.

    Returns
    -------
    dict
        ``{protocol: {fold_number: {split: [speakers]}}}``, fold numbers as
        ints.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> manifest = {f"u{s}{g}": {"speaker": f"Ses0{s}{g}"}
    ...             for s in range(1, 6) for g in "FM"}
    >>> _ = write_folds(manifest, tmp)
    >>> read_folds(tmp)["session"][2]["test"]
    ['Ses02F', 'Ses02M']
    """
    with open(folds_index_path(save_folder), encoding="utf-8") as handle:
        index = json.load(handle)
    return {
        protocol: {int(k): splits for k, splits in folds.items()}
        for protocol, folds in index.items()
    }


def write_folds(manifest, save_folder, protocols=PROTOCOLS, speaker_valid=None):
    """Writes the split manifests of every fold and the fold index.

    Arguments
    ---------
    manifest : dict or str or os.PathLike
        Manifest (or its path) whose entries have a ``speaker`` field.
    save_folder : str or os.PathLike
        Output folder; files go to ``<save_folder>/folds/``.
    protocols : sequence of str
        Protocols to write (default both ``"speaker"`` and ``"session"``).
    speaker_valid : str, optional
        Validation rule of the speaker protocol, see :func:`make_folds`.

    Returns
    -------
    str
        The path of ``<save_folder>/folds/folds.json``.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> manifest = {f"u{s}{g}": {"speaker": f"Ses0{s}{g}"}
    ...             for s in range(1, 6) for g in "FM"}
    >>> index = write_folds(manifest, tmp)
    >>> load_manifest(fold_paths(tmp, "speaker", 1)["test"])
    {'u1F': {'speaker': 'Ses01F'}}
    """
    manifest = load_manifest(manifest)
    index = {}
    for protocol in protocols:
        folds = make_folds(manifest, protocol, speaker_valid)
        index[protocol] = {str(k): splits for k, splits in folds.items()}
        write_protocol(manifest, save_folder, protocol, folds)
        logger.info("Wrote %d %s folds", len(folds), protocol)
    path = folds_index_path(save_folder)
    write_json(path, index, sort_keys=True)
    return path
