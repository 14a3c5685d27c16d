"""The corpus of a run and the splits of its fold, checked before training.

:func:`check_protocol` and :func:`prepare_corpus` (the protocol and fold
exist, and the fold's splits share no speaker and no audio,
:func:`check_prepared_fold`; the corpus is prepared once, on the main
process);
:func:`check_ratings` (the corpus rates what the model learns, on its
scale); :func:`split_entries` and :func:`check_split` (a split as the
recipe's data pipelines read it, and the protocol facts it must meet);
:func:`class_weights` (the cross-entropy's weights from the training
counts).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import os
from collections import Counter

from speechbrain.utils.distributed import (
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.corpus import (
    read_corpus_info,
)
from speechbrain_mtmm.data.fold_checks import check_fold_files, fold_files
from speechbrain_mtmm.data.folds import FoldError, check_fold
from speechbrain_mtmm.data.iemocap import IEMOCAPError
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
)
from speechbrain_mtmm.training.hparams import HparamsError
from speechbrain_mtmm.training.losses import balanced_class_weights

logger = get_logger(__name__)


class DataError(ValueError):
    """A manifest entry the recipe cannot use; the message names it."""


#: What a recipe does with an utterance that has no transcript
MISSING_TRANSCRIPTS = ("error", "empty")


#: Label index of an utterance rated for the dimensions only (ignored by
#: the cross-entropy, as torch's ``ignore_index`` default)
NO_CLASS = -100


#: Fold files already checked by this process: (path, mtime, size) tuples
_CHECKED = set()


def check_prepared_fold(folder, protocol, fold):
    """Checks a prepared fold's splits once per process and version of its
    files (:func:`~speechbrain_mtmm.data.fold_checks.check_fold_files`).

    Arguments
    ---------
    folder : str or os.PathLike
        The prepared folder.
    protocol : str
        The run's protocol.
    fold : int
        Its fold.

    Returns
    -------
    bool
        Whether the fold's files exist (and were checked).

    Raises
    ------
    FoldError
        A speaker, test session or audio file shared across its splits.

    Example
    -------
    >>> check_prepared_fold(getfixture("tmp_path"), "speaker", 1)
    False
    """
    try:
        stamp = tuple(
            (path, os.stat(path).st_mtime_ns, os.stat(path).st_size)
            for path in fold_files(folder, protocol, fold).values()
        )
    except OSError:
        return False  # not prepared yet
    if stamp not in _CHECKED:
        if check_fold_files(folder, protocol, fold) is None:
            return False
        _CHECKED.add(stamp)
    return True


def check_protocol(
    data_folder, protocol, fold, protocols=None, prepare_folder=None
):
    """Stops on a protocol or fold the corpus does not have, or on a
    prepared fold whose splits share a speaker or audio, before any folder
    is made or any data prepared.

    Arguments
    ---------
    data_folder : str
        The corpus (a release, or a prepared folder with ``corpus.json``).
    protocol : str
        The run's protocol.
    fold : int
        Its fold.
    protocols : dict, optional
        Protocol -> folds that the recipe's preparation makes (default:
        IEMOCAP's); a prepared ``data_folder`` brings its own.
    prepare_folder : str, optional
        Where a release is prepared: its fold is checked when it is
        already there (:func:`check_prepared_fold`).

    Returns
    -------
    dict or None
        The description of a prepared ``data_folder``.
    """
    info = read_corpus_info(data_folder)
    check_fold(protocol, fold, protocols if info is None else info["protocols"])
    folder = data_folder if info is not None else prepare_folder
    if folder is not None:
        check_prepared_fold(folder, protocol, fold)
    return info


def prepare_corpus(
    prepare,
    data_folder,
    prepare_folder,
    protocol,
    fold,
    protocols=None,
    **options,
):
    """The corpus of a run, prepared once.

    A ``data_folder`` that is already a prepared folder (``corpus.json``,
    :func:`corpus_overrides`) is used as it is. Otherwise ``prepare`` writes
    ``data_folder`` into ``prepare_folder`` on the main process (the others
    wait), and the protocol and fold must be among those it wrote; the
    fold's splits must share no speaker and no audio
    (:func:`check_prepared_fold`, at no cost when :func:`check_protocol`
    checked the same files).

    Arguments
    ---------
    prepare : callable
        ``prepare(data_folder=..., save_folder=..., **options)``.
    data_folder : str
        The corpus.
    prepare_folder : str
        Where the preparation goes.
    protocol : str
        The run's protocol.
    fold : int
        Its fold.
    protocols : dict, optional
        Protocol -> folds that ``prepare`` makes, checked before it runs
        (default: IEMOCAP's).
    **options
        Passed to ``prepare``.

    Returns
    -------
    dict
        The corpus description (``corpus.json``).
    """
    info = check_protocol(data_folder, protocol, fold, protocols)
    if info is None:
        run_on_main(
            prepare,
            kwargs={
                "data_folder": data_folder,
                "save_folder": prepare_folder,
                **options,
            },
        )
        info = read_corpus_info(prepare_folder)
        if info is None:
            raise DataError(
                f"{prepare_folder}: the preparation wrote no corpus.json"
            )
        check_fold(protocol, fold, info["protocols"])  # those it wrote
        check_prepared_fold(prepare_folder, protocol, fold)
    elif os.path.realpath(prepare_folder) != os.path.realpath(data_folder):
        raise DataError(
            f"{data_folder} is a prepared corpus, but prepare_folder is "
            f"{prepare_folder}: leave prepare_folder out (or give the same "
            "folder)"
        )
    return info


def check_ratings(info, folder, rating_scale, weights, n_dims):
    """Stops when the corpus is rated on another scale than the model's,
    or when a dimension with a loss weight is never rated.

    Arguments
    ---------
    info : dict
        The corpus description (``corpus.json``).
    folder : str
        The prepared folder (for the message).
    rating_scale : list of float
        The model's ``rating_scale``.
    weights : dict
        Dimension -> loss weight.
    n_dims : int
        Dimensions the model predicts.

    Example
    -------
    >>> info = {"rating_scale": [1.0, 7.0], "dimensions": ["valence"]}
    >>> check_ratings(info, "p", [1.0, 7.0], {"valence": 0.5}, 2)
    >>> check_ratings(info, "p", [1.0, 7.0], {"arousal": 0.5}, 2)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.splits.DataError: p: no utterance is rated \
for arousal; train without it (--w_arousal=0)
    """
    scale = info["rating_scale"]
    if scale is not None and list(rating_scale) != list(scale):
        raise DataError(
            f"{folder}: rated on {scale[0]:g}-{scale[1]:g}, but rating_scale "
            f"is {list(rating_scale)}"
        )
    for name in DIMENSIONS[:n_dims]:
        if weights.get(name, 0) > 0 and name not in info["dimensions"]:
            raise DataError(
                f"{folder}: no utterance is rated for {name}; train "
                f"without it (--w_{name}=0)"
            )


def split_entries(path, heard=None):
    """The utterances of one split of a fold, as its data pipelines read
    them.

    Each entry keeps its transcript as ``gold_text`` (CTC's targets) and
    says where its ``text`` comes from (``text_source``): the gold
    transcript, or, with ``heard``, what an ASR model heard.

    Arguments
    ---------
    path : str or path-like
        The split's manifest (``fold_paths(...)[split]``).
    heard : dict, optional
        Utterance id -> ASR transcript, replacing ``text``.

    Returns
    -------
    dict
        Utterance id -> entry.

    Raises
    ------
    FoldError
        The manifest is missing (the data was not prepared there).
    DataError
        An utterance without an ASR transcript.

    Example
    -------
    >>> path = getfixture("tmp_path") / "test.json"
    >>> _ = path.write_text('{"u1": {"text": "hi"}}')
    >>> split_entries(path, {"u1": "high"})["u1"]
    {'text': 'high', 'gold_text': 'hi', 'text_source': 'asr'}
    """
    if not os.path.isfile(path):
        raise FoldError(
            f"{path}: missing; was the data prepared into "
            f"{os.path.dirname(os.path.dirname(os.path.dirname(path)))}?"
        )
    with open(path, encoding="utf-8") as fin:
        data = json.load(fin)
    for utt_id, entry in data.items():
        entry["gold_text"] = entry["text"]
        entry["text_source"] = "gold" if heard is None else "asr"
        if heard is not None:
            if utt_id not in heard:
                raise DataError(f"{path}: {utt_id} has no ASR transcript")
            entry["text"] = heard[utt_id]
    return data


def check_split(
    data,
    split,
    path,
    labels,
    classes_trained=True,
    missing_transcripts="error",
    max_audio_seconds=None,
):
    """Stops on labels outside the label set, on classes with no training
    example, on a split without any class while the classes are trained,
    and on an utterance without a transcript (``missing_transcripts:
    error``); reports cropped audio.

    Arguments
    ---------
    data : dict
        One split's entries (:func:`split_entries`).
    split : str
        Its name.
    path : str
        Its manifest.
    labels : list of str
        The model's classes.
    classes_trained : bool
        The cross-entropy has a weight (``w_ce > 0``).
    missing_transcripts : str
        One of :data:`MISSING_TRANSCRIPTS`.
    max_audio_seconds : float, optional
        The crop length (the cropped utterances are counted).

    Example
    -------
    >>> data = {"u1": {"emo": "a", "duration": 1.0, "gold_text": "",
    ...                "text_source": "gold"}}
    >>> check_split(data, "test", "t.json", ["a"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.splits.DataError: t.json: u1 has no \
transcript (missing_transcripts: empty reads it as an empty text)
    >>> check_split(data, "test", "t.json", ["a"], missing_transcripts="empty")
    """
    if missing_transcripts not in MISSING_TRANSCRIPTS:
        raise HparamsError(
            f"missing_transcripts must be one of {MISSING_TRANSCRIPTS}, not "
            f"{missing_transcripts!r}"
        )
    seen = {e["emo"] for e in data.values()} - {None}
    unknown = seen - set(labels)
    if unknown:
        raise IEMOCAPError(
            f"{path}: labels {sorted(unknown)} are not in labels "
            f"{list(labels)}; set labels to match the data (IEMOCAP: "
            "label_map)"
        )
    if not seen and classes_trained:
        raise DataError(
            f"{path}: no utterance has a class, so the classes cannot be "
            f"{'trained' if split == 'train' else 'scored'}; train the "
            "dimensions only (--w_ce=0) or fix the labels"
        )
    if missing_transcripts == "error":
        for utt_id, entry in data.items():
            text = entry.get("gold_text")
            if entry["text_source"] == "gold" and not (text or "").strip():
                raise DataError(
                    f"{path}: {utt_id} has no transcript (missing_transcripts"
                    ": empty reads it as an empty text)"
                )
    unseen = [label for label in labels if label not in seen]
    if split == "train" and unseen:
        raise DataError(
            f"{path}: labels {unseen} have no training example; remove "
            "them from labels or fix label_map"
        )
    if max_audio_seconds is not None:
        long = sum(e["duration"] > max_audio_seconds for e in data.values())
        if long:
            logger.info(
                f"{split}: {long} of {len(data)} utterances are longer than "
                f"{max_audio_seconds} s and are cropped (max_audio_seconds)"
            )


def class_weights(kind, labels, entries):
    """The cross-entropy's class weights, as ``class_weights`` says.

    ``none``: unweighted (the paper); ``balanced``: ``N / (C * n_c)``
    from the training split's counts, as the MSP-Podcast baseline
    (:func:`~speechbrain_mtmm.training.losses.balanced_class_weights`);
    the weights are logged.

    Arguments
    ---------
    kind : str
        ``none`` or ``balanced``.
    labels : list of str
        The classes, in the classifier's order.
    entries : dict
        The training split's entries (their ``emo``).

    Returns
    -------
    torch.Tensor or None
        One weight per class (None when unweighted).

    Example
    -------
    >>> entries = {"u1": {"emo": "a"}, "u2": {"emo": "a"}, "u3": {"emo": "b"}}
    >>> class_weights("balanced", ["a", "b"], entries)
    tensor([0.7500, 1.5000])
    """
    if kind not in ("none", "balanced"):
        raise HparamsError(
            f"class_weights must be none or balanced, not {kind!r}"
        )
    if kind == "none":
        return None
    counts = Counter(e["emo"] for e in entries.values())
    weights = balanced_class_weights([counts[label] for label in labels])
    table = {label: round(float(w), 4) for label, w in zip(labels, weights)}
    logger.info("Class weights (from the training counts): %s", table)
    return weights
