"""MSP-Podcast preparation: a manifest and the release's official split in
the fold layout of IEMOCAP, so the same training code reads both.

Reads a release folder (``MSP_PODCAST.md``, section 1.1)::

    <data_folder>/Labels/labels_consensus.csv   (or .json)
    <data_folder>/Audios/<FileName>.wav
    <data_folder>/Transcripts/<utt>.txt

and writes into ``save_folder``::

    msp_podcast.json   {utt_id: {wav, duration, speaker, gender, split, emo,
                        emo_code, valence, arousal, dominance, text}}
    folds/official/fold_1/{train,valid,test}.json    Train, Development, Test1
    folds/official/fold_1/test2.json                 Test2
    test3.json          the unlabelled Test3 files, for prediction only
    summary.json        counts of everything kept, set aside and missing
    corpus.json         what the folder holds, for the recipes
                        (:mod:`speechbrain_mtmm.data.corpus`)

A second call with the same release (same labels file) and options reuses
the folder.

* Classes: the 8 of the challenge (A S H U F D C N as ang, sad, hap, sur,
  fea, dis, con, neu). ``O`` (other) and ``X`` (no agreement) have
  no class (``emo: null``, ``emo_code`` keeps the code) but keep their
  valence, arousal and dominance: the dimensional task uses them, the
  class task leaves them out (counted in the summary).
* Valence, arousal, dominance stay on the release's 1-7 scale.
* The transcript is kept as written (normalising is the model's business).
  An utterance without one keeps ``text: null`` and is counted; Test3 has
  none.
* Durations come from the audio headers (16-bit PCM is never decoded),
  with a progress bar.
* A malformed row (wrong column count, unknown class code, a rating that is
  not a number in 1-7, an unknown split) is an error naming the file and
  the line; so is a file labelled twice (both lines); a missing wav is
  an error listing them (``skip_missing`` drops and counts them instead).
  Nothing is dropped silently.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
import json
import os
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.audio import audio_duration
from speechbrain_mtmm.data.corpus import read_corpus_info, write_corpus_info
from speechbrain_mtmm.data.fold_checks import check_fold_files
from speechbrain_mtmm.data.folds import FoldError
from speechbrain_mtmm.run_folder import RATING_SCALES

logger = get_logger(__name__)

MANIFEST_NAME = "msp_podcast.json"
SUMMARY_NAME = "summary.json"
TEST3_NAME = "test3.json"
PROTOCOL = "official"
#: The challenge's 8 classes (code -> label), in its order
CLASSES = {
    "A": "ang",
    "S": "sad",
    "H": "hap",
    "U": "sur",
    "F": "fea",
    "D": "dis",
    "C": "con",
    "N": "neu",
}
#: Codes without a class: kept for the dimensions only
NO_CLASS = ("O", "X")
#: Release split -> our file (fold_1/<name>.json, or beside it)
SPLITS = {
    "Train": "train",
    "Development": "valid",
    "Test1": "test",
    "Test2": "test2",
    "Test3": "test3",
}
RATING_RANGE = RATING_SCALES["msp-podcast"]
COLUMNS = (
    "FileName",
    "EmoClass",
    "EmoAct",
    "EmoVal",
    "EmoDom",
    "SpkrID",
    "Gender",
    "Split_Set",
)


class MSPPodcastError(ValueError):
    """A release that cannot be prepared; the message names the file."""


def read_labels(data_folder):
    """The rows of ``Labels/labels_consensus.csv`` (or ``.json``), checked.

    Arguments
    ---------
    data_folder : str or os.PathLike
        The release folder.

    Returns
    -------
    list of dict
        One per file: ``utt``, ``file``, ``emo_code``, ``arousal``,
        ``valence``, ``dominance`` (floats or None for Test3), ``speaker``,
        ``gender``, ``split``.

    Raises
    ------
    MSPPodcastError
        Naming the file and line of a malformed row.
    """
    labels = Path(data_folder) / "Labels"
    path = labels / "labels_consensus.csv"
    if path.is_file():
        with open(path, newline="", encoding="utf-8-sig") as fin:
            reader = csv.reader(fin)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != COLUMNS:
                raise MSPPodcastError(
                    f"{path}: line 1: expected the columns "
                    f"{','.join(COLUMNS)}, got {header}"
                )
            rows = [
                (line, dict(zip(COLUMNS, row)), row)
                for line, row in enumerate(reader, start=2)
                if row
            ]
        checked = [_row(path, line, fields, raw) for line, fields, raw in rows]
        _no_duplicates(path, checked, [line for line, _, _ in rows])
        return checked
    path = labels / "labels_consensus.json"
    if not path.is_file():
        raise MSPPodcastError(
            f"{labels}: no labels_consensus.csv or labels_consensus.json; "
            "give the MSP-Podcast release folder"
        )
    with open(path, encoding="utf-8-sig") as fin:
        data = json.load(fin, object_pairs_hook=_unique_keys(path))
    checked = [
        _row(path, name, {"FileName": name, **fields}, list(fields))
        for name, fields in data.items()
    ]
    _no_duplicates(path, checked, [repr(name) for name in data])
    return checked


def _unique_keys(path):
    """A ``json`` object hook refusing a key given twice (``json`` keeps
    the last one without a word)."""

    def build(pairs):
        """The object of ``pairs``; a FileName twice is an error."""
        found = {}
        for key, value in pairs:
            if key in found:
                raise MSPPodcastError(
                    f"{path}: {key!r} is given twice; keep one of them"
                )
            found[key] = value
        return found

    return build


def _no_duplicates(path, rows, where):
    """Refuses two rows of one utterance (the same FileName, or two names
    of one stem, which is the utterance id), naming both."""
    first = {}
    for row, at in zip(rows, where):
        if row["utt"] in first:
            before, name = first[row["utt"]]
            what = "lines" if isinstance(at, int) else "entries"
            raise MSPPodcastError(
                f"{path}: {what} {before} and {at} are both utterance "
                f"{row['utt']} ({name}, {row['file']}); keep one of them"
            )
        first[row["utt"]] = (at, row["file"])


def _row(path, line, fields, raw):
    where = (
        f"{path}: line {line}" if isinstance(line, int) else f"{path}: {line}"
    )
    if len(raw) != len(COLUMNS) and isinstance(line, int):
        raise MSPPodcastError(
            f"{where}: {len(raw)} fields, expected {len(COLUMNS)}"
        )
    split = str(fields.get("Split_Set", "")).strip()
    if split not in SPLITS:
        raise MSPPodcastError(
            f"{where}: unknown Split_Set {split!r} (expected one of "
            f"{', '.join(SPLITS)})"
        )
    code = str(fields.get("EmoClass", "")).strip()
    labelled = split != "Test3"
    if labelled and code not in CLASSES and code not in NO_CLASS:
        raise MSPPodcastError(f"{where}: unknown EmoClass {code!r}")
    ratings = {}
    for key, name in (
        ("EmoAct", "arousal"),
        ("EmoVal", "valence"),
        ("EmoDom", "dominance"),
    ):
        value = str(fields.get(key, "")).strip()
        if not labelled and value in ("", "nan", "NaN"):
            ratings[name] = None
            continue
        try:
            number = float(value)
        except ValueError:
            raise MSPPodcastError(
                f"{where}: {key} {value!r} is not a number"
            ) from None
        if not RATING_RANGE[0] <= number <= RATING_RANGE[1]:
            raise MSPPodcastError(
                f"{where}: {key} {number} is outside the 1-7 scale"
            )
        ratings[name] = number
    file = str(fields["FileName"]).strip()
    return {
        "utt": Path(file).stem,
        "file": file,
        "emo_code": code if labelled else None,
        **ratings,
        "speaker": str(fields.get("SpkrID", "Unknown")).strip(),
        "gender": str(fields.get("Gender", "")).strip(),
        "split": split,
    }


def build_manifest(data_folder, skip_missing=False, progress=True):
    """The manifest and summary of a release (writes nothing).

    Arguments
    ---------
    data_folder : str or os.PathLike
        The release folder.
    skip_missing : bool
        Drop (and count) rows whose wav is missing instead of raising.
    progress : bool
        Show a progress bar while reading the audio headers.

    Returns
    -------
    manifest : dict
        ``{utt_id: entry}`` sorted by id (see the module docstring).
    summary : dict
        Counts per split, class, code without class, missing transcript.
    """
    data_folder = Path(data_folder)
    rows = read_labels(data_folder)
    audios = data_folder / "Audios"
    missing = [r["file"] for r in rows if not (audios / r["file"]).is_file()]
    if missing and not skip_missing:
        shown = ", ".join(missing[:5]) + (
            f", ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise MSPPodcastError(
            f"{audios}: {len(missing)} labelled file(s) missing: {shown} "
            "(skip_missing drops them)"
        )
    gone = set(missing)
    manifest = {}
    no_text = Counter()
    for row in tqdm(
        sorted(
            (r for r in rows if r["file"] not in gone), key=lambda r: r["utt"]
        ),
        desc="MSP-Podcast",
        unit="file",
        disable=not progress,
    ):
        wav = audios / row["file"]
        transcript = data_folder / "Transcripts" / f"{row['utt']}.txt"
        text = None
        if transcript.is_file():
            text = transcript.read_text(encoding="utf-8-sig").strip() or None
        if text is None:
            no_text[row["split"]] += 1
        code = row["emo_code"]
        manifest[row["utt"]] = {
            "wav": str(wav.resolve()),
            "duration": audio_duration(wav),
            "speaker": row["speaker"],
            "gender": row["gender"],
            "split": row["split"],
            "emo": CLASSES.get(code),
            "emo_code": code,
            "valence": row["valence"],
            "arousal": row["arousal"],
            "dominance": row["dominance"],
            "text": text,
        }
    return manifest, summarize(manifest, len(missing), no_text)


def summarize(manifest, missing_wav, no_text):
    """Counts per split and class, and of what has no class or no text.

    Arguments
    ---------
    manifest : dict
        From :func:`build_manifest`.
    missing_wav : int
        Rows dropped for a missing wav (``skip_missing``).
    no_text : collections.Counter
        Split -> utterances without a transcript.

    Returns
    -------
    dict
    """
    splits = Counter(e["split"] for e in manifest.values())
    classes = Counter(e["emo"] for e in manifest.values() if e["emo"])
    no_class = Counter(
        e["emo_code"]
        for e in manifest.values()
        if e["emo"] is None and e["split"] != "Test3"
    )
    return {
        "utterances": len(manifest),
        "hours": round(sum(e["duration"] for e in manifest.values()) / 3600, 4),
        "split_counts": {s: splits[s] for s in SPLITS if splits[s]},
        "class_counts": {c: classes[c] for c in CLASSES.values() if classes[c]},
        "no_class_counts": dict(sorted(no_class.items())),
        "missing_transcript_counts": dict(sorted(no_text.items())),
        "skipped_counts": {"missing_wav": missing_wav},
    }


def prepare_msp_podcast(data_folder, save_folder, skip_missing=False):
    """Writes the manifest, the official split and the summary.

    Arguments
    ---------
    data_folder : str or os.PathLike
        The release folder.
    save_folder : str or os.PathLike
        Where the files go (see the module docstring).
    skip_missing : bool
        Drop (and count) rows whose wav is missing.

    Returns
    -------
    dict
        The summary.
    """
    save = Path(save_folder)
    stamp = _labels_stamp(data_folder, skip_missing)
    info = read_corpus_info(save)
    if info is not None and (save / SUMMARY_NAME).is_file():
        with open(save / SUMMARY_NAME, encoding="utf-8") as fin:
            summary = json.load(fin)
        if summary.get("prepared_from") == stamp:
            logger.info("%s: already prepared from %s", save, data_folder)
            return summary
    manifest, summary = build_manifest(data_folder, skip_missing)
    summary["prepared_from"] = stamp
    fold = save / "folds" / PROTOCOL / "fold_1"
    for split, name in SPLITS.items():
        entries = {u: e for u, e in manifest.items() if e["split"] == split}
        target = (
            save / TEST3_NAME if split == "Test3" else fold / f"{name}.json"
        )
        write_json(target, entries)
    write_json(save / MANIFEST_NAME, manifest)
    write_json(save / SUMMARY_NAME, summary)
    try:  # one recording under two file names in two splits is a leak
        check_fold_files(save, PROTOCOL, 1)
    except FoldError as error:
        raise MSPPodcastError(f"{data_folder}: {error}") from None
    write_corpus_info(
        save,
        corpus="msp-podcast",
        manifest=MANIFEST_NAME,
        labels=list(CLASSES.values()),
        dimensions=["valence", "arousal", "dominance"],
        rating_scale=list(RATING_RANGE),
        protocols={PROTOCOL: 1},
        source=stamp["data_folder"],
    )
    return summary


def _labels_stamp(data_folder, skip_missing):
    """What a preparation depends on: the release, its labels file (size
    and modification time) and the options; the same stamp reuses it."""
    labels = Path(data_folder) / "Labels"
    stamp = {
        "data_folder": str(Path(data_folder).resolve()),
        "skip_missing": bool(skip_missing),
    }
    for name in ("labels_consensus.csv", "labels_consensus.json"):
        if (labels / name).is_file():
            stat = (labels / name).stat()
            stamp[name] = [stat.st_size, stat.st_mtime_ns]
    return stamp


def fold_files(save_folder):
    """The files of the official split, by our split name.

    Arguments
    ---------
    save_folder : str or os.PathLike
        A prepared folder.

    Returns
    -------
    dict

    Example
    -------
    >>> sorted(fold_files("p"))
    ['test', 'test2', 'test3', 'train', 'valid']
    """
    fold = os.path.join(str(save_folder), "folds", PROTOCOL, "fold_1")
    files = {
        name: os.path.join(fold, f"{name}.json")
        for name in SPLITS.values()
        if name != "test3"
    }
    files["test3"] = os.path.join(str(save_folder), TEST3_NAME)
    return files
