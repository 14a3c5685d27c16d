"""Any corpus from a CSV manifest (``mtmm prepare csv``).

Reads a CSV with a header and the columns

=================  ========================================================
``path``           audio file, relative to the CSV's folder or absolute
``text``           the transcript (``allow_missing_text``: may be empty)
``label``          the emotion class (empty: rated for the dimensions only)
``valence`` ...    optional ``valence``, ``arousal``, ``dominance`` ratings
                   on ``scale`` (empty cell: not rated)
``speaker``        optional; needed for speaker-independent folds
``split``          optional: ``train``, ``valid`` or ``test`` per row
``id``             optional utterance id (default: the file name's stem)
=================  ========================================================

(other columns are ignored and listed in the summary, but one that looks
like a misspelt column of these, ``valance``, ``Speaker``, is an error
with "did you mean"), and writes into ``save_folder`` the manifest
(``manifest.json``, in the format of the IEMOCAP one: ``{utt_id: {wav,
duration, text, emo, valence, arousal, dominance, speaker}}``),
``summary.json``, ``corpus.json``
(:mod:`speechbrain_mtmm.data.corpus`) and the folds in IEMOCAP's layout,
``folds/<protocol>/fold_<k>/{train,valid,test}.json``:

* with a ``split`` column: protocol ``split``, one fold, as given;
* otherwise ``folds`` speaker-independent folds (protocol ``speaker``,
  :func:`~speechbrain_mtmm.data.folds.group_folds`): each fold tests one
  speaker group, validates on the next, trains on the rest;
* without speakers, folds are refused, since utterances of one speaker in
  training and test overstate every score, unless ``utterance_folds``
  asks for utterance-level folds (protocol ``utterance``).

Every row is checked; a bad one is an error naming the CSV, its line and
the problem (a missing or unreadable audio file, an unknown label, a
rating off the scale, an empty transcript, a duplicate id, a label spelt
in two cases, :class:`LabelSpellings`). Durations come from the audio
headers. A fold whose splits share audio (one file under two ids, or two
files of one content) is an error too
(:mod:`~speechbrain_mtmm.data.fold_checks`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import difflib
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.audio import AudioFileError, audio_duration
from speechbrain_mtmm.data.corpus import write_corpus_info
from speechbrain_mtmm.data.fold_checks import check_fold_files
from speechbrain_mtmm.data.folds import (
    FOLDS_DIRNAME,
    FOLDS_INDEX,
    SPLITS,
    FoldError,
    group_folds,
    write_protocol,
)
from speechbrain_mtmm.data.tables import CSVError, read_csv
from speechbrain_mtmm.run_folder import DIMENSIONS

MANIFEST_NAME = "manifest.json"
SUMMARY_NAME = "summary.json"
#: Spellings of a ``split`` value
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "dev": "valid",
    "development": "valid",
    "test": "test",
}
SEED = 0  # utterance-level folds: the shuffle before dealing
#: The columns read; others are ignored (and listed in the summary)
COLUMNS = ("path", "text", "label", *DIMENSIONS, "speaker", "split", "id")
REQUIRED = ("path", "text", "label")
#: How close an unknown column must be to a missing known one to be taken
#: for a misspelling of it (difflib's ratio)
CLOSE = 0.75


class CorpusCSVError(ValueError):
    """A manifest that cannot be prepared; names the file and line."""


def _rating(value, name, scale, where):
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise CorpusCSVError(
            f"{where}: {name} {value!r} is not a number"
        ) from None
    if not math.isfinite(number) or not scale[0] <= number <= scale[1]:
        raise CorpusCSVError(
            f"{where}: {name} {value} is outside the scale "
            f"{scale[0]:g}-{scale[1]:g} (--scale)"
        )
    return number


def check_columns(manifest, columns):
    """Refuses a column that looks like a misspelt known one; returns the
    other unknown columns (ignored).

    A column that differs from a known column the file lacks only in case
    (``Valence``), or is close to it (``valance``, ``speaker_id``), would
    otherwise be ignored, and the run would train without that task or
    those speakers without a word.

    Arguments
    ---------
    manifest : str or os.PathLike
        The CSV (for messages).
    columns : list of str
        Its header.

    Returns
    -------
    list of str
        Unknown columns not close to any missing known one.

    Raises
    ------
    CorpusCSVError
        With "did you mean", or naming a missing required column.

    Example
    -------
    >>> check_columns("c.csv", ["path", "text", "label", "notes"])
    ['notes']
    >>> check_columns("c.csv", ["path", "text", "label", "valance"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.csv_corpus.CorpusCSVError: c.csv: unknown column \
'valance': did you mean 'valence'? (rename the column)
    """
    missing = [name for name in COLUMNS if name not in columns]
    ignored = []
    for name in columns:
        if name in COLUMNS:
            continue
        close = [m for m in missing if m == name.strip().lower()]
        close = close or difflib.get_close_matches(
            name.strip().lower(), missing, n=1, cutoff=CLOSE
        )
        if close:
            raise CorpusCSVError(
                f"{manifest}: unknown column {name!r}: did you mean "
                f"{close[0]!r}? (rename the column)"
            )
        ignored.append(name)
    absent = [name for name in REQUIRED if name in missing]
    if absent:
        raise CorpusCSVError(f"{manifest}: no column {', '.join(absent)}")
    return ignored


class LabelSpellings:
    """One spelling per class, compared case-insensitively.

    ``Angry`` and ``angry`` in one manifest would make two classes. Without
    ``labels``, a second spelling of a label is refused (naming both lines):
    the class names become the model's outputs, so the toolkit does not
    pick one. With ``labels``, every spelling of a class is read as the
    one given there, and counted (:attr:`respelled`).

    Arguments
    ---------
    manifest : str or os.PathLike
        The CSV (for messages).
    labels : sequence of str, optional
        The labels as they must be spelt (``--labels``).

    Example
    -------
    >>> spell = LabelSpellings("c.csv", ["Angry", "sad"])
    >>> spell("ANGRY", "c.csv line 2"), dict(spell.respelled)
    ('Angry', {'ANGRY': 1})
    >>> spell = LabelSpellings("c.csv")
    >>> spell("Angry", "c.csv line 2")
    'Angry'
    >>> spell("angry", "c.csv line 3")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.csv_corpus.CorpusCSVError: c.csv line 3: label \
'angry' is 'Angry' (c.csv line 2) in another case: fix the CSV, or give the \
spelling to keep with --labels (every spelling of a label is then read as \
it)
    """

    def __init__(self, manifest, labels=None):
        self.given = {}
        for label in labels or ():
            key = label.casefold()
            if key in self.given and self.given[key] != label:
                raise CorpusCSVError(
                    f"--labels gives {self.given[key]!r} and {label!r}: one "
                    "label in two spellings"
                )
            self.given[key] = label
        self.labels = list(labels) if labels else None
        self.seen = {}
        self.respelled = Counter()

    def __call__(self, label, where):
        """The spelling of ``label`` to keep; ``where`` names its row."""
        key = label.casefold()
        if self.labels is not None:
            if key not in self.given:
                raise CorpusCSVError(
                    f"{where}: label {label!r} is not one of "
                    f"{sorted(self.labels)}"
                )
            if self.given[key] != label:
                self.respelled[label] += 1
            return self.given[key]
        first, at = self.seen.setdefault(key, (label, where))
        if first != label:
            raise CorpusCSVError(
                f"{where}: label {label!r} is {first!r} ({at}) in another "
                "case: fix the CSV, or give the spelling to keep with "
                "--labels (every spelling of a label is then read as it)"
            )
        return label


def read_corpus_csv(
    manifest,
    scale=None,
    labels=None,
    allow_missing_text=False,
    progress=True,
    notes=None,
):
    """The checked entries of a CSV manifest.

    Arguments
    ---------
    manifest : str or os.PathLike
        The CSV file.
    scale : tuple of float, optional
        Lowest and highest rating; needed when the CSV has rating columns.
    labels : sequence of str, optional
        The allowed labels, in the model's order (default: those found);
        the manifest's labels are compared with them case-insensitively
        and read in their spelling (:class:`LabelSpellings`).
    allow_missing_text : bool
        Keep rows with an empty ``text`` (``text: null``, counted) instead
        of stopping.
    progress : bool
        Show a progress bar while reading the audio headers.
    notes : dict, optional
        Filled with ``ignored_columns`` (unknown columns, not read) and
        ``respelled_labels`` (spelling -> rows read in ``labels``'
        spelling).

    Returns
    -------
    dict
        ``{utt_id: entry}`` in file order.

    Raises
    ------
    CorpusCSVError
        Naming the file and line of the first bad row, or a misspelt
        column (:func:`check_columns`).
    """
    manifest = Path(manifest)
    try:
        rows = read_csv(manifest, (), lines=True)
    except CSVError as error:
        raise CorpusCSVError(str(error)) from None
    if not rows:
        raise CorpusCSVError(f"{manifest}: no rows")
    ignored = check_columns(manifest, list(rows[0][1]))
    columns = set(rows[0][1])
    rated = [name for name in DIMENSIONS if name in columns]
    if rated and scale is None:
        raise CorpusCSVError(
            f"{manifest}: columns {', '.join(rated)} need their rating "
            "scale (--scale LOW HIGH, e.g. --scale 1 5)"
        )
    if scale is not None and not float(scale[0]) < float(scale[1]):
        raise CorpusCSVError(f"--scale {scale}: LOW must be below HIGH")
    spell = LabelSpellings(manifest, labels)
    folder = manifest.parent
    entries, where_of = {}, {}
    for line, row in tqdm(
        rows, desc="CSV corpus", unit="file", disable=not progress
    ):
        where = f"{manifest} line {line}"
        path = Path(row["path"].strip())
        wav = path if path.is_absolute() else folder / path
        utt = row.get("id", "").strip() or path.stem
        if utt in entries:
            raise CorpusCSVError(
                f"{where}: utterance id {utt!r} again (first at line "
                f"{where_of[utt]}); give an id column"
            )
        label = row["label"].strip() or None
        if label is not None:
            label = spell(label, where)
        ratings = {
            name: _rating(row[name], name, scale, where)
            if name in row
            else None
            for name in DIMENSIONS
        }
        if label is None and all(v is None for v in ratings.values()):
            raise CorpusCSVError(f"{where}: neither a label nor a rating")
        text = row["text"].strip() or None
        if text is None and not allow_missing_text:
            raise CorpusCSVError(
                f"{where}: empty transcript (--allow_missing_text keeps "
                "such rows, read as an empty text)"
            )
        entry = {"wav": str(wav.resolve()), "text": text, "emo": label}
        entry.update(ratings)
        if "speaker" in row:
            speaker = row["speaker"].strip()
            if not speaker:
                raise CorpusCSVError(f"{where}: empty speaker")
            entry["speaker"] = speaker
        else:
            entry["speaker"] = None
        if "split" in row:
            split = SPLIT_NAMES.get(row["split"].strip().lower())
            if split is None:
                raise CorpusCSVError(
                    f"{where}: split {row['split']!r} is not train, valid "
                    "or test"
                )
            entry["split"] = split
        if not wav.is_file():
            raise CorpusCSVError(f"{where}: {wav}: no such audio file")
        try:
            entry["duration"] = audio_duration(wav)
        except AudioFileError as error:
            raise CorpusCSVError(f"{where}: {error}") from None
        entries[utt] = entry
        where_of[utt] = line
    if notes is not None:
        notes["ignored_columns"] = ignored
        notes["respelled_labels"] = dict(sorted(spell.respelled.items()))
    return entries


def _split_folds(entries, manifest):
    splits = Counter(e["split"] for e in entries.values())
    empty = [split for split in SPLITS if not splits[split]]
    if empty:
        raise CorpusCSVError(
            f"{manifest}: the split column has no {' and no '.join(empty)} row"
        )
    return {1: {split: [split] for split in SPLITS}}


def make_corpus_folds(entries, manifest, folds=5, utterance_folds=False):
    """The protocol and folds of a CSV corpus (see the module docstring).

    Arguments
    ---------
    entries : dict
        From :func:`read_corpus_csv`.
    manifest : str or os.PathLike
        The CSV (for messages).
    folds : int
        Number of folds without a ``split`` column.
    utterance_folds : bool
        Without speakers, make utterance-level folds.

    Returns
    -------
    protocol : str
    folds : dict
        ``{fold: {split: [group names]}}``.
    group : callable
        ``(utt_id, entry) -> group name``.
    """
    first = next(iter(entries.values()))
    if "split" in first:
        return "split", _split_folds(entries, manifest), lambda u, e: e["split"]
    if first["speaker"] is not None:
        sizes = Counter(e["speaker"] for e in entries.values())
        try:
            made = group_folds(dict(sizes), folds)
        except FoldError as error:
            raise CorpusCSVError(f"{manifest}: {error}") from None
        return "speaker", made, lambda u, e: e["speaker"]
    if not utterance_folds:
        raise CorpusCSVError(
            f"{manifest}: no speaker column, so no speaker-independent "
            "folds: utterances of one speaker in training and test make "
            "every score look better than it is. Add a speaker (or a "
            "split) column, or pass --utterance_folds to accept "
            "utterance-level folds"
        )
    order = np.random.default_rng(SEED).permutation(len(entries))
    ids = list(entries)
    groups = {ids[i]: f"group{n % folds + 1}" for n, i in enumerate(order)}
    sizes = Counter(groups.values())
    try:
        made = group_folds(dict(sizes), folds)
    except FoldError as error:
        raise CorpusCSVError(f"{manifest}: {error}") from None
    return "utterance", made, lambda u, e: groups[u]


def summarize(entries, protocol, folds, group):
    """Counts of what was prepared.

    Arguments
    ---------
    entries : dict
        The manifest.
    protocol : str
        Its protocol.
    folds : dict
        Its folds.
    group : callable
        ``(utt_id, entry) -> group name``.

    Returns
    -------
    dict
    """
    values = list(entries.values())
    fold_counts = {}
    for fold, splits in folds.items():
        members = {split: set(names) for split, names in splits.items()}
        fold_counts[str(fold)] = {
            split: sum(
                group(u, e) in members[split] for u, e in entries.items()
            )
            for split in SPLITS
        }
    summary = {
        "utterances": len(values),
        "hours": round(sum(e["duration"] for e in values) / 3600, 4),
        "class_counts": dict(
            sorted(Counter(e["emo"] for e in values if e["emo"]).items())
        ),
        "no_class": sum(e["emo"] is None for e in values),
        "rated_counts": {
            name: sum(e[name] is not None for e in values)
            for name in DIMENSIONS
        },
        "missing_transcript": sum(e["text"] is None for e in values),
        "speakers": len({e["speaker"] for e in values} - {None}),
        "protocol": protocol,
        "fold_counts": fold_counts,
    }
    if protocol == "split":
        shared = _shared_speakers(values)
        summary["speakers_in_several_splits"] = shared
    return summary


def _shared_speakers(values):
    splits = {}
    for entry in values:
        if entry["speaker"] is not None:
            splits.setdefault(entry["speaker"], set()).add(entry["split"])
    return sorted(s for s, found in splits.items() if len(found) > 1)


def prepare_csv(
    manifest,
    save_folder,
    folds=5,
    scale=None,
    labels=None,
    utterance_folds=False,
    allow_missing_text=False,
    progress=True,
):
    """Prepares a CSV corpus into ``save_folder`` (see the module docstring).

    Arguments
    ---------
    manifest : str or os.PathLike
        The CSV.
    save_folder : str or os.PathLike
        Where the manifest, folds, summary and ``corpus.json`` go.
    folds : int
        Speaker-independent folds to make without a ``split`` column.
    scale : tuple of float, optional
        The rating scale of the ``valence``/``arousal``/``dominance``
        columns.
    labels : sequence of str, optional
        The labels in the model's order (default: those found, sorted).
    utterance_folds : bool
        Without a speaker column, make utterance-level folds anyway.
    allow_missing_text : bool
        Keep rows with an empty transcript.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The summary.

    Example
    -------
    >>> from speechbrain_mtmm.data.synthetic_csv import (
    ...     generate_synthetic_csv_corpus)
    >>> tmp = getfixture("tmp_path")
    >>> _ = generate_synthetic_csv_corpus(tmp, n_speakers=4, per_speaker=4)
    >>> summary = prepare_csv(tmp / "csv_corpus" / "corpus.csv",
    ...     tmp / "prepared", folds=4, scale=(1, 5), progress=False)
    >>> summary["utterances"], summary["protocol"], summary["fold_counts"]["1"]
    (16, 'speaker', {'train': 8, 'valid': 4, 'test': 4})
    """
    notes = {}
    entries = read_corpus_csv(
        manifest, scale, labels, allow_missing_text, progress, notes
    )
    found = sorted({e["emo"] for e in entries.values() if e["emo"]})
    if not found:
        raise CorpusCSVError(
            f"{manifest}: no row has a label; the models of this toolkit "
            "learn classes and dimensions together (a corpus without "
            "classes is not supported)"
        )
    labels = list(labels) if labels else found
    # group_folds checks that no speaker is in two splits of a fold
    protocol, made, group = make_corpus_folds(
        entries, manifest, folds, utterance_folds
    )
    save = Path(save_folder)
    write_protocol(entries, save, protocol, made, group)
    index = {protocol: {str(k): splits for k, splits in made.items()}}
    write_json(save / FOLDS_DIRNAME / FOLDS_INDEX, index, sort_keys=True)
    write_json(save / MANIFEST_NAME, entries)
    summary = summarize(entries, protocol, made, group)
    summary.update((key, value) for key, value in notes.items() if value)
    write_json(save / SUMMARY_NAME, summary)
    # the same recording under two ids in two splits is a leak
    # (corpus.json, written last, is not written then)
    for fold in made:
        try:
            check_fold_files(save, protocol, fold)
        except FoldError as error:
            raise CorpusCSVError(f"{manifest}: {error}") from None
    rated = [
        name
        for name in DIMENSIONS
        if any(e[name] is not None for e in entries.values())
    ]
    write_corpus_info(
        save,
        corpus="csv",
        manifest=MANIFEST_NAME,
        labels=labels,
        dimensions=rated,
        rating_scale=[float(scale[0]), float(scale[1])] if scale else None,
        protocols={protocol: len(made)},
        source=str(Path(manifest).resolve()),
    )
    return summary


def format_summary(summary, save_folder):
    """A few lines for the terminal.

    Arguments
    ---------
    summary : dict
        From :func:`prepare_csv`.
    save_folder : str or os.PathLike
        Where it was written.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_summary({"utterances": 2, "hours": 0.001,
    ...     "class_counts": {"a": 1, "b": 1}, "no_class": 0,
    ...     "missing_transcript": 0, "speakers": 2, "protocol": "speaker",
    ...     "fold_counts": {"1": {"train": 1, "valid": 0, "test": 1}},
    ...     "rated_counts": {}}, "out"))
    2 utterances (0.001 h), 2 speakers; classes: a 1, b 1
    protocol speaker, 1 fold(s) in out/folds/speaker
    """
    classes = ", ".join(f"{k} {v}" for k, v in summary["class_counts"].items())
    lines = [
        f"{summary['utterances']} utterances ({summary['hours']} h), "
        f"{summary['speakers']} speakers; classes: {classes}"
    ]
    if summary["no_class"]:
        lines.append(f"{summary['no_class']} rated for the dimensions only")
    if summary["missing_transcript"]:
        lines.append(
            f"{summary['missing_transcript']} without a transcript (read as "
            "an empty text)"
        )
    if summary.get("respelled_labels"):
        spelt = ", ".join(
            f"{k} {v}" for k, v in summary["respelled_labels"].items()
        )
        lines.append(f"read in the spelling of --labels: {spelt} row(s)")
    if summary.get("ignored_columns"):
        lines.append(
            "ignored columns (not read): "
            + ", ".join(summary["ignored_columns"])
        )
    if summary.get("speakers_in_several_splits"):
        shared = summary["speakers_in_several_splits"]
        lines.append(
            f"warning: {len(shared)} speaker(s) in several splits "
            f"({', '.join(shared[:5])}): the split is not speaker-independent"
        )
    protocol = summary["protocol"]
    folder = os.path.join(str(save_folder), FOLDS_DIRNAME, protocol)
    lines.append(
        f"protocol {protocol}, {len(summary['fold_counts'])} fold(s) in "
        f"{folder}"
    )
    return "\n".join(lines)
