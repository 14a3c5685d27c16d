"""Preparation of the IEMOCAP release: manifest, summary and folds.

Reads ``IEMOCAP_full_release`` (PAPER.md, section 4):

* ``Session<k>/dialog/EmoEvaluation/<dialog>.txt``: top-level files only (the
  per-rater subfolders ``Categorical/``, ``Attribute/``,
  ``Self-evaluation/`` and hidden ``._*`` files are ignored). A summary line
  ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]``
  gives the category and [valence, activation, dominance] (1-5);
* ``Session<k>/dialog/transcriptions/<dialog>.txt``: lines
  ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``;
* ``Session<k>/sentences/wav/<dialog>/<utterance>.wav``.

and writes into ``save_folder``:

* ``iemocap.json``: ``{utt_id: {wav, duration, speaker, session, gender,
  dialog, improvised, emo, emo_raw, valence, arousal, dominance, text}}``;
* ``summary.json``: counts per class, speaker, session, improvised/scripted,
  excluded codes, skipped files, total utterances and hours;
* ``folds/``: the speaker and session protocols (see
  :mod:`speechbrain_mtmm.data.folds`);
* ``prepare_options.json``: the options and a fingerprint of the release, so
  that a second call with the same options reuses the outputs.

The speaker of an utterance is its session plus the gender letter just before
its three-digit index (``Ses03M_impro05a_F012`` is spoken by ``Ses03F``),
not the letter after ``Ses0k``.

Command line::

    mtmm prepare \
        --data_folder /path/to/IEMOCAP_full_release --save_folder results/data \
        [--label_map 4class|4class_exc|5class_fru] [--skip_missing]

Authors
 * speechbrain-mtmm contributors
"""

import hashlib
import json
import os
import re
from collections import Counter

from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.audio import audio_duration
from speechbrain_mtmm.data.catalog import LABEL_MAPS
from speechbrain_mtmm.data.corpus import read_corpus_info, write_corpus_info
from speechbrain_mtmm.data.folds import (
    N_FOLDS,
    PROTOCOLS,
    fold_paths,
    folds_index_path,
    read_folds,
    write_folds,
)
from speechbrain_mtmm.run_folder import DIMENSIONS, RATING_SCALES

logger = get_logger(__name__)

SESSIONS = (1, 2, 3, 4, 5)
MANIFEST_NAME = "iemocap.json"
SUMMARY_NAME = "summary.json"
OPTIONS_NAME = "prepare_options.json"
PREPARE_VERSION = 1
MAX_LISTED = 20

_NUMBER = r"\d+(?:\.\d*)?"
_SUMMARY_RE = re.compile(
    rf"^\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s+"
    r"(?P<utt>\S+)\s+(?P<emo>[A-Za-z]+)\s+"
    rf"\[\s*(?P<val>{_NUMBER})\s*,\s*(?P<act>{_NUMBER})\s*,"
    rf"\s*(?P<dom>{_NUMBER})\s*\]\s*$"
)
_TRANSCRIPT_RE = re.compile(
    rf"^(?P<utt>\S+)\s+\[{_NUMBER}-{_NUMBER}\]:(?P<text>.*)$"
)
_UTT_RE = re.compile(r"^Ses0(?P<session>[1-5])[FM]_\S+_(?P<gender>[FM])\d{3}$")
# a summary line that lost its "[start - end]" opening bracket
_HEADLESS_SUMMARY_RE = re.compile(
    r"^\s*[\d.]+\s*-\s*[\d.]+\]\s+Ses0\d[FM]_\S+\s+\w+\s+\["
)
# valence, activation and dominance are rated 1-5 in IEMOCAP
RATING_RANGE = RATING_SCALES["iemocap"]


class IEMOCAPError(ValueError):
    """Base class of the preparation errors (one clear message each)."""


class IEMOCAPFormatError(IEMOCAPError):
    """The folder or a file is not shaped like the IEMOCAP release."""


class IEMOCAPMissingFilesError(IEMOCAPError):
    """Labelled utterances lack their wav file or their transcript.

    Arguments
    ---------
    message : str
        The error message.
    missing : list of str
        The missing wav paths or utterance ids.
    """

    def __init__(self, message, missing):
        super().__init__(message)
        self.missing = list(missing)


def resolve_label_map(label_map="4class"):
    """Returns the raw-code -> label dict of a preset name or a dict.

    Arguments
    ---------
    label_map : str or dict
        A key of ``LABEL_MAPS`` or a mapping (e.g. from YAML) of raw codes
        (``neu``, ``exc``, ...) to labels.

    Returns
    -------
    dict
        The mapping; raw codes absent from it are excluded.

    Example
    -------
    >>> resolve_label_map("4class")["exc"]
    'hap'
    >>> resolve_label_map({"neu": "neutral", "ang": "angry"})["ang"]
    'angry'
    """
    if isinstance(label_map, str):
        if label_map not in LABEL_MAPS:
            raise ValueError(
                f"unknown label_map {label_map!r}, expected one of "
                f"{sorted(LABEL_MAPS)} or a dict of raw code -> label"
            )
        return dict(LABEL_MAPS[label_map])
    if not hasattr(label_map, "items") or not label_map:
        raise ValueError("label_map must be a preset name or a non-empty dict")
    return {str(code): str(label) for code, label in label_map.items()}


def label_classes(label_map="4class"):
    """The labels of a map, in order of first appearance.

    Arguments
    ---------
    label_map : str or dict
        See :func:`resolve_label_map`.

    Returns
    -------
    list of str
        Unique labels (a fixed class order for label encoders).

    Example
    -------
    >>> label_classes("4class")
    ['neu', 'hap', 'sad', 'ang']
    >>> label_classes("4class_exc")
    ['neu', 'hap', 'exc', 'sad', 'ang']
    """
    return list(dict.fromkeys(resolve_label_map(label_map).values()))


def speaker_of(utt_id):
    """Speaker of an utterance: session + letter before the 3-digit index.

    Arguments
    ---------
    utt_id : str
        Utterance id such as ``Ses03M_impro05a_F012``.

    Returns
    -------
    str
        Speaker id such as ``Ses03F``.

    Example
    -------
    >>> speaker_of("Ses03M_impro05a_F012")
    'Ses03F'
    >>> speaker_of("Ses01F_script01_1_M003")
    'Ses01M'
    """
    match = _UTT_RE.match(utt_id)
    if match is None:
        raise IEMOCAPFormatError(
            f"utterance id {utt_id!r} is not of the form "
            "Ses0<k><F|M>_<dialog>_<F|M><3 digits>"
        )
    return f"Ses0{match['session']}{match['gender']}"


def _read_lines(path):
    """Lines of a text file; a byte-order mark is skipped, undecodable
    bytes are replaced."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return handle.read().splitlines()


def parse_evaluation(path):
    """Reads the summary lines of one top-level EmoEvaluation file.

    Lines starting with ``[`` are summaries and must be well formed, with
    ratings on IEMOCAP's 1-5 scale; a line that looks like a summary
    without its leading ``[`` is an error too (it would otherwise drop its
    utterance silently). The ``%`` header, per-rater lines (``C-E2:``,
    ``A-E3:``) and blank lines are skipped.

    Arguments
    ---------
    path : str or os.PathLike
        ``Session<k>/dialog/EmoEvaluation/<dialog>.txt``.

    Returns
    -------
    dict
        ``{utt_id: {"emo_raw", "valence", "arousal", "dominance", "line"}}``
        in file order (``line``: line number of the summary).

    Example
    -------
    >>> path = getfixture("tmpdir").join("Ses01F_impro01.txt")
    >>> _ = path.write(
    ...     "% header\\n\\n[6.2901 - 8.2357]\\tSes01F_impro01_F000\\tneu"
    ...     "\\t[2.5000, 3.0000, 2.0000]\\nC-E2:\\tNeutral;\\n"
    ... )
    >>> parse_evaluation(str(path))["Ses01F_impro01_F000"]["arousal"]
    3.0
    """
    evaluations = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.lstrip().startswith("["):
            if _HEADLESS_SUMMARY_RE.search(line):
                raise IEMOCAPFormatError(
                    f"{path}, line {number}: an evaluation summary line "
                    f"without its leading '[': {line.strip()!r}"
                )
            continue
        match = _SUMMARY_RE.match(line.strip())
        if match is None:
            raise IEMOCAPFormatError(
                f"{path}, line {number}: malformed evaluation summary line "
                f"{line.strip()!r} (expected '[start - end]<TAB>utterance"
                "<TAB>code<TAB>[V, A, D]')"
            )
        utt = match["utt"]
        if utt in evaluations:
            raise IEMOCAPFormatError(
                f"{path}, line {number}: utterance {utt} evaluated twice "
                f"(first at line {evaluations[utt]['line']})"
            )
        ratings = [float(match[k]) for k in ("val", "act", "dom")]
        if not all(RATING_RANGE[0] <= r <= RATING_RANGE[1] for r in ratings):
            raise IEMOCAPFormatError(
                f"{path}, line {number}: ratings {ratings} of {utt} are "
                f"outside IEMOCAP's {RATING_RANGE[0]:g}-{RATING_RANGE[1]:g} "
                "scale"
            )
        evaluations[utt] = {
            "emo_raw": match["emo"],
            "valence": ratings[0],
            "arousal": ratings[1],
            "dominance": ratings[2],
            "line": number,
        }
    return evaluations


def parse_transcriptions(path):
    """Reads the utterance lines of one transcription file.

    Arguments
    ---------
    path : str or os.PathLike
        ``Session<k>/dialog/transcriptions/<dialog>.txt``.

    Returns
    -------
    dict
        ``{utt_id: text}`` (stripped; possibly empty) for the lines shaped
        ``<utt> [start-end]: text``; other lines are ignored.

    Example
    -------
    >>> path = getfixture("tmpdir").join("t.txt")
    >>> _ = path.write("Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\\n"
    ...                "M: [BREATHING]\\n")
    >>> parse_transcriptions(str(path))
    {'Ses01F_impro01_F000': 'Excuse me.'}
    """
    texts = {}
    for line in _read_lines(path):
        match = _TRANSCRIPT_RE.match(line.strip())
        if match is not None:
            texts[match["utt"]] = match["text"].strip()
    return texts


def check_release(data_folder):
    """Checks that ``data_folder`` is an IEMOCAP release.

    Arguments
    ---------
    data_folder : str or os.PathLike
        The ``IEMOCAP_full_release`` folder.

    Returns
    -------
    dict
        ``{session: Session<k> folder}`` for the 5 sessions.

    Raises
    ------
    IEMOCAPFormatError
        One error naming everything that is missing.

    Example
    -------
    >>> try:
    ...     check_release(getfixture("tmpdir"))
    ... except IEMOCAPFormatError as error:
    ...     print(str(error).split(": ")[1].split(" under")[0])
    no Session1..Session5/dialog/EmoEvaluation found
    """
    data_folder = os.path.abspath(str(data_folder))
    sessions = {k: os.path.join(data_folder, f"Session{k}") for k in SESSIONS}
    required = (
        "dialog/EmoEvaluation",
        "dialog/transcriptions",
        "sentences/wav",
    )
    missing = [
        f"Session{k}/{sub}"
        for sub in required
        for k, folder in sessions.items()
        if not os.path.isdir(os.path.join(folder, *sub.split("/")))
    ]
    if not missing:
        return sessions
    evaluations = [m for m in missing if m.endswith("EmoEvaluation")]
    if len(evaluations) == len(SESSIONS):
        problem = (
            "no Session1..Session5/dialog/EmoEvaluation found under "
            f"{data_folder}"
        )
    else:
        problem = f"missing {', '.join(missing)} under {data_folder}"
    nested = os.path.join(data_folder, "IEMOCAP_full_release")
    hint = f" (did you mean {nested}?)" if os.path.isdir(nested) else ""
    raise IEMOCAPFormatError(
        f"{data_folder} is not an IEMOCAP release: {problem}{hint}"
    )


def _dialogs(session_folder):
    """Sorted dialog names: top-level, non-hidden EmoEvaluation .txt files."""
    folder = os.path.join(session_folder, "dialog", "EmoEvaluation")
    return sorted(
        name[: -len(".txt")]
        for name in os.listdir(folder)
        if name.endswith(".txt")
        and not name.startswith(".")
        and os.path.isfile(os.path.join(folder, name))
    )


def _dialog_records(session_folder, session, dialog):
    """One record per evaluated utterance of a dialog."""
    evaluation_file = os.path.join(
        session_folder, "dialog", "EmoEvaluation", f"{dialog}.txt"
    )
    transcript_file = os.path.join(
        session_folder, "dialog", "transcriptions", f"{dialog}.txt"
    )
    texts = {}
    if os.path.isfile(transcript_file):
        texts = parse_transcriptions(transcript_file)
    records = []
    for utt, evaluation in parse_evaluation(evaluation_file).items():
        try:
            speaker = speaker_of(utt)
        except IEMOCAPFormatError as error:
            where = f"{evaluation_file}, line {evaluation['line']}"
            raise IEMOCAPFormatError(f"{where}: {error}") from None
        wav = os.path.join(session_folder, "sentences", "wav", dialog, utt)
        records.append(
            {
                "utt": utt,
                "wav": f"{wav}.wav",
                "speaker": speaker,
                "session": session,
                "gender": speaker[-1],
                "dialog": dialog,
                "improvised": "impro" in dialog,
                "emo_raw": evaluation["emo_raw"],
                "valence": evaluation["valence"],
                "arousal": evaluation["arousal"],
                "dominance": evaluation["dominance"],
                "text": texts.get(utt),
            }
        )
    return records


def read_release(data_folder):
    """All evaluated utterances of the release, labelled or not.

    Arguments
    ---------
    data_folder : str or os.PathLike
        The ``IEMOCAP_full_release`` folder.

    Returns
    -------
    list of dict
        One record per evaluation summary line, with the manifest fields
        except ``emo`` and ``duration``, plus ``utt``; ``text`` is None when
        the utterance has no transcript line.
    """
    sessions = check_release(data_folder)
    records, seen = [], {}
    for session, folder in sessions.items():
        for dialog in _dialogs(folder):
            where = os.path.join(folder, "dialog", "EmoEvaluation", dialog)
            for record in _dialog_records(folder, session, dialog):
                if record["utt"] in seen:  # one id, two dialog files
                    raise IEMOCAPFormatError(
                        f"{where}.txt: utterance {record['utt']} is also "
                        f"evaluated in {seen[record['utt']]}.txt"
                    )
                seen[record["utt"]] = where
                records.append(record)
    return records


def _listing(items):
    """At most MAX_LISTED items, comma-separated, with a count of the rest."""
    shown = ", ".join(items[:MAX_LISTED])
    rest = len(items) - MAX_LISTED
    return shown + (f", ... and {rest} more" if rest > 0 else "")


def _drop_missing(records, skip_missing):
    """Removes records without wav or transcript, or raises.

    Returns the kept records and the counts of skipped ones.
    """
    no_wav = [r["wav"] for r in records if not os.path.isfile(r["wav"])]
    if no_wav and not skip_missing:
        raise IEMOCAPMissingFilesError(
            f"{len(no_wav)} labelled utterance(s) have no wav file: "
            f"{_listing(no_wav)} (use skip_missing / --skip_missing to "
            "drop them)",
            no_wav,
        )
    missing = set(no_wav)
    records = [r for r in records if r["wav"] not in missing]
    no_text = [r["utt"] for r in records if not r["text"]]
    if no_text and not skip_missing:
        raise IEMOCAPMissingFilesError(
            f"{len(no_text)} labelled utterance(s) have a missing or empty "
            f"transcript: {_listing(no_text)} (use skip_missing / "
            "--skip_missing to drop them)",
            no_text,
        )
    records = [r for r in records if r["text"]]
    return records, {"missing_wav": len(no_wav), "missing_text": len(no_text)}


def _manifest_entry(record, label):
    """The manifest fields of one kept utterance."""
    entry = {k: v for k, v in record.items() if k != "utt"}
    entry["emo"] = label
    entry["duration"] = audio_duration(record["wav"])
    return entry


def build_manifest(data_folder, label_map="4class", skip_missing=False):
    """Builds the manifest and the summary of a release (writes nothing).

    Arguments
    ---------
    data_folder : str or os.PathLike
        The ``IEMOCAP_full_release`` folder.
    label_map : str or dict
        See :func:`resolve_label_map`.
    skip_missing : bool
        Drop (and count) labelled utterances without wav or transcript
        instead of raising :class:`IEMOCAPMissingFilesError`.

    Returns
    -------
    manifest : dict
        ``{utt_id: entry}`` sorted by utterance id.
    summary : dict
        See :func:`summarize`.
    """
    mapping = resolve_label_map(label_map)
    records = read_release(data_folder)
    kept = [r for r in records if r["emo_raw"] in mapping]
    excluded = Counter(
        r["emo_raw"] for r in records if r["emo_raw"] not in mapping
    )
    kept, skipped = _drop_missing(kept, skip_missing)
    manifest = {
        r["utt"]: _manifest_entry(r, mapping[r["emo_raw"]])
        for r in sorted(kept, key=lambda r: r["utt"])
    }
    summary = summarize(manifest, label_classes(mapping))
    summary["evaluated_utterances"] = len(records)
    summary["excluded_counts"] = dict(sorted(excluded.items()))
    summary["skipped_counts"] = skipped
    return manifest, summary


def _sorted_counts(values):
    """Counter of ``values`` as a dict sorted by key."""
    return dict(sorted(Counter(values).items()))


def summarize(manifest, classes=None):
    """Counts of a manifest: per class, speaker, session and dialog type.

    Arguments
    ---------
    manifest : dict
        ``{utt_id: entry}`` with ``emo``, ``speaker``, ``session``,
        ``improvised`` and ``duration`` fields.
    classes : list of str, optional
        Class order (classes without utterances are counted as 0).

    Returns
    -------
    dict
        ``classes``, ``class_counts``, ``speaker_counts``,
        ``session_counts``, ``improvised_counts``, ``utterances``,
        ``seconds`` and ``hours``.

    Example
    -------
    >>> entry = {"emo": "hap", "speaker": "Ses01F", "session": 1,
    ...          "improvised": True, "duration": 1800.0}
    >>> summary = summarize({"u": entry}, ["neu", "hap"])
    >>> summary["class_counts"], summary["hours"]
    ({'neu': 0, 'hap': 1}, 0.5)
    """
    entries = list(manifest.values())
    classes = list(classes or sorted({e["emo"] for e in entries}))
    emos = Counter(e["emo"] for e in entries)
    seconds = sum(e["duration"] for e in entries)
    return {
        "classes": classes,
        "class_counts": {c: emos.get(c, 0) for c in classes},
        "speaker_counts": _sorted_counts(e["speaker"] for e in entries),
        "session_counts": _sorted_counts(str(e["session"]) for e in entries),
        "improvised_counts": {
            "improvised": sum(1 for e in entries if e["improvised"]),
            "scripted": sum(1 for e in entries if not e["improvised"]),
        },
        "utterances": len(entries),
        "seconds": round(seconds, 4),
        "hours": round(seconds / 3600, 4),
    }


def format_summary(summary):
    """Human-readable multi-line text of a preparation summary.

    Arguments
    ---------
    summary : dict
        As returned by :func:`build_manifest`.

    Returns
    -------
    str
        The text printed by :func:`prepare_iemocap`.

    Example
    -------
    >>> print(format_summary({"utterances": 2, "hours": 0.1,
    ...                       "class_counts": {"neu": 2}}))
    IEMOCAP: 2 utterances, 0.1 h
      class_counts: neu=2
    """
    lines = [
        f"IEMOCAP: {summary['utterances']} utterances, {summary['hours']} h"
    ]
    for key in (
        "class_counts",
        "speaker_counts",
        "session_counts",
        "improvised_counts",
        "excluded_counts",
        "skipped_counts",
    ):
        if key in summary:
            counts = " ".join(f"{k}={v}" for k, v in summary[key].items())
            lines.append(f"  {key}: {counts or '-'}")
    return "\n".join(lines)


def _release_fingerprint(data_folder):
    """sha256 of the annotation files and of the wav names and sizes."""
    digest = hashlib.sha256()
    for session, folder in check_release(data_folder).items():
        for sub in ("EmoEvaluation", "transcriptions"):
            base = os.path.join(folder, "dialog", sub)
            for name in sorted(os.listdir(base)):
                path = os.path.join(base, name)
                if os.path.isfile(path):
                    digest.update(f"{session}/{sub}/{name}\n".encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
        wav_root = os.path.join(folder, "sentences", "wav")
        for dirpath, dirnames, filenames in os.walk(wav_root):
            dirnames.sort()
            for name in sorted(filenames):
                size = os.path.getsize(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), wav_root)
                digest.update(f"{session}/{rel}:{size}\n".encode())
    return digest.hexdigest()


def _outputs_exist(save_folder):
    """Whether the manifest, summary and every fold file exist and read
    (a truncated file does not, and is written again)."""
    paths = [
        os.path.join(save_folder, MANIFEST_NAME),
        os.path.join(save_folder, SUMMARY_NAME),
        folds_index_path(save_folder),
    ]
    try:
        if not all(os.path.isfile(p) for p in paths):
            return False
        for protocol, folds in read_folds(save_folder).items():
            for fold in folds:
                paths += fold_paths(save_folder, protocol, fold).values()
        for path in paths:
            with open(path, encoding="utf-8") as handle:
                json.load(handle)
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("Prepared files in %s are incomplete", save_folder)
        return False
    return True


# options that decide which utterances and labels other runs read
_DATA_OPTIONS = ("label_map", "skip_missing", "speaker_valid")


def _load_options(save_folder):
    """The stored options of a previous run, or None."""
    path = os.path.join(save_folder, OPTIONS_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def prepare_iemocap(
    data_folder,
    save_folder,
    label_map="4class",
    skip_missing=False,
    speaker_valid=None,
    protocols=PROTOCOLS,
):
    """Prepares IEMOCAP: manifest, summary and folds in ``save_folder``.

    Safe to call from a recipe through
    ``speechbrain.utils.distributed.run_on_main``. A second call with the
    same options on an unchanged release reuses the outputs.

    Arguments
    ---------
    data_folder : str or os.PathLike
        The ``IEMOCAP_full_release`` folder.
    save_folder : str or os.PathLike
        Output folder.
    label_map : str or dict
        Preset name (``"4class"``, ``"4class_exc"``, ``"5class_fru"``) or a
        dict raw code -> label; codes not in it are excluded.
    skip_missing : bool
        Drop (and count in the summary) labelled utterances whose wav or
        transcript is missing or empty, instead of raising.
    speaker_valid : str, optional
        Validation-speaker rule of the speaker protocol (``"same_session"``,
        the default, or ``"next_session"``); see
        :func:`speechbrain_mtmm.data.folds.make_folds`.
    protocols : sequence of str
        Fold protocols to write.

    Returns
    -------
    str
        The path of ``<save_folder>/iemocap.json``.

    Example
    -------
    >>> from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap
    >>> tmp = getfixture("tmpdir")
    >>> _ = generate_synthetic_iemocap(tmp, utterances_per_dialog=4)
    >>> manifest = prepare_iemocap(
    ...     tmp.join("IEMOCAP_full_release"), tmp.join("prepared")
    ... )  # doctest: +ELLIPSIS
    IEMOCAP: ... utterances, ... h
    ...
    >>> os.path.basename(manifest)
    'iemocap.json'
    """
    save_folder = os.path.abspath(str(save_folder))
    data_folder = os.path.abspath(str(data_folder))
    options = {
        "data_folder": data_folder,
        "label_map": resolve_label_map(label_map),
        "skip_missing": bool(skip_missing),
        "speaker_valid": speaker_valid or "same_session",
        "protocols": list(protocols),
        "version": PREPARE_VERSION,
    }
    fingerprint = _release_fingerprint(data_folder)
    stored = {"options": options, "fingerprint": fingerprint}
    manifest_path = os.path.join(save_folder, MANIFEST_NAME)
    previous = _load_options(save_folder)
    if previous == stored and _outputs_exist(save_folder):
        logger.info("IEMOCAP already prepared in %s, reusing it", save_folder)
        if read_corpus_info(save_folder) is None:  # prepared before 0.3
            _describe(save_folder, options)
        return manifest_path
    changed = [
        key
        for key in _DATA_OPTIONS
        if previous is not None and previous["options"].get(key) != options[key]
    ]
    if changed and os.path.isfile(manifest_path):
        was = ", ".join(f"{k}={previous['options'][k]}" for k in changed)
        raise IEMOCAPError(
            f"{save_folder}: prepared with other {', '.join(changed)} "
            f"({was}); runs that use it would change under them: prepare "
            "into another folder (--prepare_folder=...) or delete this one"
        )
    manifest, summary = build_manifest(data_folder, label_map, skip_missing)
    if os.path.isfile(os.path.join(save_folder, OPTIONS_NAME)):
        os.remove(os.path.join(save_folder, OPTIONS_NAME))
    write_json(manifest_path, manifest, sort_keys=True)
    write_json(os.path.join(save_folder, SUMMARY_NAME), summary, sort_keys=True)
    write_folds(manifest, save_folder, protocols, speaker_valid)
    _describe(save_folder, options)
    write_json(os.path.join(save_folder, OPTIONS_NAME), stored, sort_keys=True)
    text = format_summary(summary)
    logger.info(text)
    print(text)
    return manifest_path


def _describe(save_folder, options):
    """Writes ``corpus.json``: what the prepared folder holds."""
    write_corpus_info(
        save_folder,
        corpus="iemocap",
        manifest=MANIFEST_NAME,
        labels=list(dict.fromkeys(options["label_map"].values())),
        dimensions=list(DIMENSIONS),
        rating_scale=list(RATING_RANGE),
        protocols={p: N_FOLDS[p] for p in options["protocols"]},
        source=options["data_folder"],
    )


def prepared_manifest(save_folder):
    """The manifest a preparation wrote into ``save_folder``.

    Arguments
    ---------
    save_folder : str or os.PathLike
        The ``save_folder`` (``prepare_folder``) of :func:`prepare_iemocap`.

    Returns
    -------
    str

    Example
    -------
    >>> prepared_manifest("results/prepared")
    'results/prepared/iemocap.json'
    """
    return os.path.join(str(save_folder), MANIFEST_NAME)
