"""``mtmm predict``: emotion predictions for many files from the shell.

::

    mtmm predict --model <model folder> <file.wav ...|folder|manifest.csv>
        [--text "..."] [--transcripts transcripts.csv]
        [--asr_source openai/whisper-small] [--device cuda]
        [--format json|csv] [--output predictions.jsonl]

Inputs: audio files, folders (searched recursively for .wav, .flac, .ogg
and .mp3 files) and CSV manifests (a ``path`` column, relative paths
resolved against the CSV's folder, and an optional ``text`` column).
Transcripts: ``--text`` for a single input (or, with no input at all, a
text-only prediction), the manifest's ``text`` column, or
``--transcripts`` (a CSV with ``path`` and ``text`` columns, matched on the
resolved path, then on the file name when it is unique). Files without a
transcript are transcribed when the model (or ``--asr_source``) names an
ASR model, otherwise predicted from audio alone with the text masked.

Output: one JSON object per line (``--format json``, the default) or one
CSV row per input (``--format csv``), to ``--output`` or stdout. A file
that cannot be read or predicted gets its own line with an ``error`` and
the others still run. Exit code: 0 when every input succeeded, 1 when any
failed, 2 for usage errors (bad arguments, no inputs, a model folder that
cannot be loaded).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
import json
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import DIMENSIONS

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DECIMALS = 5


class UsageError(ValueError):
    """Bad command-line input; exit code 2."""


def read_csv(path, required=("path",)):
    """Rows of a CSV file with a header, every row checked.

    A byte-order mark (Excel's "CSV UTF-8") is skipped. A row with more or
    fewer fields than the header (an unquoted comma in a transcript), a
    quoted field running over several lines (an unterminated quote would
    swallow the rows after it) or an empty required value is an error
    naming its line: no row is dropped or merged silently.

    Arguments
    ---------
    path : str or path-like
        The CSV file.
    required : tuple of str
        Columns that must be present.

    Returns
    -------
    list of dict

    Example
    -------
    >>> path = getfixture("tmpdir") / "m.csv"
    >>> _ = path.write_text("path,text\\na.wav,Hello\\n", "utf-8")
    >>> read_csv(path)
    [{'path': 'a.wav', 'text': 'Hello'}]
    >>> _ = path.write_text("path,text\\na.wav,Hello, you\\n", "utf-8")
    >>> read_csv(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.predict.UsageError: ...m.csv line 2: 3 \
fields, the header has 2 (quote a text that holds commas)
    """
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fin:
            reader = csv.reader(fin)
            columns = next(reader, [])
            missing = [name for name in required if name not in columns]
            if missing:
                raise UsageError(f"{path}: no column {', '.join(missing)}")
            line = reader.line_num
            for fields in reader:
                start, line = line + 1, reader.line_num
                where = f"{path} line {start}"
                if line > start:
                    raise UsageError(
                        f"{where}: a quoted field runs over lines "
                        f"{start}-{line} (an unterminated quote?)"
                    )
                if not fields:
                    continue  # a blank line
                if len(fields) != len(columns):
                    raise UsageError(
                        f"{where}: {len(fields)} fields, the header has "
                        f"{len(columns)} (quote a text that holds commas)"
                    )
                row = dict(zip(columns, fields))
                if "path" in row and not row["path"].strip():
                    raise UsageError(f"{where}: empty path")
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: cannot read the CSV ({error})") from None
    return rows


def collect_inputs(inputs, text=None, transcripts=None):
    """The (file, transcript) pairs to predict, in order.

    Arguments
    ---------
    inputs : list of str
        Audio files, folders and ``.csv`` manifests.
    text : str, optional
        Transcript of the single input (or text-only when no inputs).
    transcripts : str, optional
        CSV with ``path`` and ``text`` columns.

    Returns
    -------
    list of tuple
        ``(file or None, text or None)``.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> _ = (folder / "a.wav").write_binary(b"")
    >>> _ = (folder / "m.csv").write_text("path,text\\na.wav,Hi\\n", "utf-8")
    >>> collect_inputs([str(folder / "m.csv")]) == [(str(folder / "a.wav"),
    ...     "Hi")]
    True
    >>> collect_inputs([], text="Hi")
    [(None, 'Hi')]
    """
    jobs = []
    for item in inputs:
        jobs.extend(_expand(Path(item)))
    if text is not None:
        if len(jobs) > 1:
            raise UsageError("--text goes with one input; use --transcripts")
        return [(jobs[0][0] if jobs else None, text)]
    if not jobs:
        raise UsageError(
            "no input files (give files, folders, a CSV or --text)"
        )
    if transcripts is not None:
        lookup = _transcript_lookup(transcripts)
        jobs = [(f, t if t is not None else lookup(f)) for f, t in jobs]
    return jobs


def _expand(item):
    if item.suffix.lower() == ".csv":
        rows = read_csv(item)
        return [
            (str(_resolve(row["path"], item.parent)), row.get("text") or None)
            for row in rows
        ]
    if item.is_dir():
        files = sorted(
            p
            for p in item.rglob("*")
            if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
        )
        if not files:
            raise UsageError(f"{item}: no {'/'.join(AUDIO_SUFFIXES)} files")
        return [(str(p), None) for p in files]
    return [(str(item), None)]  # a missing file is that file's own error


def _resolve(path, folder):
    path = Path(path).expanduser()
    return path if path.is_absolute() else folder / path


def _transcript_lookup(csv_path):
    by_path, by_name = {}, {}
    folder = Path(csv_path).parent
    for row in read_csv(csv_path, required=("path", "text")):
        path = _resolve(row["path"], folder)
        by_path[str(path.resolve())] = row["text"]
        by_name.setdefault(path.name, []).append(row["text"])

    def lookup(file):
        if str(Path(file).resolve()) in by_path:
            return by_path[str(Path(file).resolve())]
        texts = by_name.get(Path(file).name, [])
        return texts[0] if len(texts) == 1 else None

    return lookup


class _Writer:
    """Writes one JSON line or CSV row per input, flushed as it goes."""

    def __init__(self, stream, fmt, labels, dims):
        self.stream, self.fmt = stream, fmt
        if fmt == "csv":
            columns = ["file", "label", "path", *dims]
            columns += [f"{d}_1to5" for d in dims]
            columns += [f"p_{label}" for label in labels]
            columns += ["windows", "text_used", "warning", "error"]
            self.csv = csv.DictWriter(stream, columns, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, row):
        row = _rounded(row)
        if self.fmt == "csv":
            flat = {k: v for k, v in row.items() if k != "probs"}
            for label, p in row.get("probs", {}).items():
                flat[f"p_{label}"] = p
            self.csv.writerow(flat)
        else:
            self.stream.write(json.dumps(row) + "\n")
        self.stream.flush()


def _rounded(value):
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


#: How a model folder is run: PyTorch, or its ONNX graphs (fp32, int8)
BACKENDS = ("torch", "onnx", "onnx-int8")


def load_recognizer(model, asr_source=None, device="cpu", backend="torch"):
    """The recognizer of a model folder, or a :class:`UsageError`.

    Arguments
    ---------
    model : str
        A folder written by ``mtmm export``.
    asr_source : str, optional
        ASR model for missing transcripts (replaces the folder's).
    device : str
        Where the model runs (the ONNX backends run on the CPU).
    backend : str
        One of :data:`BACKENDS`.

    Returns
    -------
    MultimodalEmotionRecognizer
    """
    overrides = {"asr_source": asr_source} if asr_source else {}
    if backend not in BACKENDS:
        raise UsageError(f"backend {backend!r}: use one of {BACKENDS}")
    if backend != "torch" and device != "cpu":
        raise UsageError(f"the {backend} backend runs on the CPU only")
    try:
        if backend == "torch":
            return MultimodalEmotionRecognizer.from_hparams(
                model, overrides=overrides, run_opts={"device": device}
            )
        return MultimodalEmotionRecognizer.from_onnx(
            model, int8=backend == "onnx-int8", overrides=overrides
        )
    except Exception as error:
        raise UsageError(f"cannot load the model {model}: {error}") from None


def _predict_one(recognizer, file, text):
    try:
        if file is None:
            return {"file": None, **recognizer.predict_text(text)}
        return recognizer.predict_file(file, text)
    except Exception as error:  # one bad input must not stop the others
        return {"file": file, "error": f"{type(error).__name__}: {error}"}


def run_predict(
    model,
    inputs=(),
    text=None,
    transcripts=None,
    asr_source=None,
    device="cpu",
    fmt="json",
    output=None,
    backend="torch",
):
    """Predicts every input and writes one row each (see the module doc).

    Arguments
    ---------
    model : str
        A folder written by ``mtmm export``.
    inputs : sequence of str
        Audio files, folders and CSV manifests.
    text : str, optional
        Transcript of the single input (text-only without inputs).
    transcripts : str, optional
        CSV with ``path`` and ``text`` columns.
    asr_source : str, optional
        ASR model for missing transcripts.
    device : str
        Where the model runs.
    fmt : str
        ``"json"`` (one object per line) or ``"csv"``.
    output : str, optional
        Output file (default: stdout).
    backend : str
        ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (``mtmm export
        --onnx [--int8]``).

    Returns
    -------
    int
        0: all inputs predicted; 1: some failed; 2: usage error.
    """
    try:
        jobs = collect_inputs(list(inputs), text, transcripts)
        recognizer = load_recognizer(model, asr_source, device, backend)
    except UsageError as error:
        print(f"mtmm predict: error: {error}", file=sys.stderr)
        return 2
    print(f"model: {Path(model).resolve()} ({backend})", file=sys.stderr)
    stream = sys.stdout
    if output:
        stream = open(output, "w", newline="", encoding="utf-8")
    counts = Counter()
    try:
        writer = _Writer(
            stream,
            fmt,
            recognizer.labels,
            DIMENSIONS[: recognizer.system.n_dims],
        )
        bar = tqdm(jobs, unit="file", disable=len(jobs) < 2, file=sys.stderr)
        for file, transcript in bar:
            row = _predict_one(recognizer, file, transcript)
            counts["failed" if "error" in row else "ok"] += 1
            if "error" in row:
                tqdm.write(f"error: {row['error']}", file=sys.stderr)
            writer.write(row)
    finally:
        if stream is not sys.stdout:
            stream.close()
    if counts["failed"]:
        print(
            f"mtmm predict: {counts['failed']} of {len(jobs)} inputs failed",
            file=sys.stderr,
        )
        return 1
    return 0
