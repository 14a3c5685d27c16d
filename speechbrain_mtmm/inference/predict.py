"""``mtmm predict``: emotion predictions for many files from the shell.

::

    mtmm predict --model <model folder> [--model <another> ...]
        [--weights 0.6 0.4 ...] <file.wav ...|folder|manifest.csv>
        [--text "..."] [--transcripts transcripts.csv]
        [--asr_source openai/whisper-small] [--device cuda]
        [--format json|csv|msp-podcast] [--output predictions.jsonl]

Inputs: audio files, folders (searched recursively for .wav, .flac, .ogg
and .mp3 files) and CSV manifests (a ``path`` column, relative paths
resolved against the CSV's folder, and an optional ``text`` column).
Transcripts: ``--text`` for a single input (or, with no input at all, a
text-only prediction), the manifest's ``text`` column, or
``--transcripts`` (a CSV with ``path`` and ``text`` columns, matched on the
resolved path, then on the file name when it is unique in the CSV and
among the inputs; a relative path is read against the CSV's folder, or,
when no file is there, the current folder). A ``--transcripts`` CSV that
matches no input is a usage error; one that leaves some inputs without a
transcript is a warning with their count. Files without a transcript are
transcribed when the model (or ``--asr_source``) names an ASR model,
otherwise predicted from audio alone with the text masked.

Several ``--model`` (or a sweep's export folder, ``mtmm export --sweep``,
which stands for all its models) predict as an ensemble
(:mod:`speechbrain_mtmm.inference.ensemble`): their class probabilities
and dimensions are averaged, weighted by ``--weights`` (normalised; equal
by default), after checking that they share classes, dimensions and
rating scale; each row then carries ``ensemble``, the number of models.

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

from speechbrain_mtmm.data import tables
from speechbrain_mtmm.data.msp_podcast import CLASSES
from speechbrain_mtmm.data.tables import CSVError
from speechbrain_mtmm.inference.ensemble import (
    EnsembleError,
    EnsembleRecognizer,
    model_folders,
    normalised_weights,
)
from speechbrain_mtmm.inference.model_source import BACKENDS
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import (
    RATING_SCALE,
    RATING_SCALES,
    classes_trained,
    rating_key,
    to_rating,
    trained_dimensions,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DECIMALS = 5


class UsageError(ValueError):
    """Bad command-line input; exit code 2."""


def read_csv(path, required=("path",)):
    """Rows of a CSV file with a header, every row checked
    (:func:`speechbrain_mtmm.data.tables.read_csv`).

    Arguments
    ---------
    path : str or path-like
        The CSV file.
    required : tuple of str
        Columns that must be present.

    Returns
    -------
    list of dict

    Raises
    ------
    UsageError
        Naming the file and line of a bad row.
    """
    try:
        return tables.read_csv(path, required)
    except CSVError as error:
        raise UsageError(str(error)) from None


def collect_inputs(inputs, text=None, transcripts=None):
    """The (file, transcript) pairs to predict, in order.

    Arguments
    ---------
    inputs : list of str
        Audio files, folders and ``.csv`` manifests.
    text : str, optional
        Transcript of the single input (or text-only when no inputs).
    transcripts : str, optional
        CSV with ``path`` and ``text`` columns: it must match at least
        one input that has no transcript yet (a warning counts those it
        leaves without one).

    Returns
    -------
    list of tuple
        ``(file or None, text or None)``.

    Raises
    ------
    UsageError
        Bad inputs, or ``transcripts`` matching none of them.

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
        jobs = _with_transcripts(jobs, transcripts)
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
    """``(lookup, example)``: the transcript of an input (by resolved
    path, else by a file name unique in the CSV and among the inputs), and
    the first row's path as written and as resolved (for messages). A
    relative path is read against the CSV's folder, or, when no file is
    there, against the current folder; a path given twice is an error
    naming both lines."""
    by_path, by_name, line_of = {}, {}, {}
    folder = Path(csv_path).parent
    try:
        rows = tables.read_csv(csv_path, ("path", "text"), lines=True)
    except CSVError as error:
        raise UsageError(str(error)) from None
    for line, row in rows:
        path = _resolve(row["path"], folder)
        if not path.exists() and _resolve(row["path"], Path.cwd()).exists():
            path = _resolve(row["path"], Path.cwd())
        key = str(path.resolve())
        if key in line_of:
            raise UsageError(
                f"{csv_path} line {line}: {row['path']} again (first at "
                f"line {line_of[key]}); keep one transcript per file"
            )
        line_of[key] = line
        by_path[key] = row["text"]
        by_name.setdefault(path.name, []).append(row["text"])
    example = None
    if rows:
        written = rows[0][1]["path"]
        example = (written, str(_resolve(written, folder).resolve()))

    def lookup(file, by_name_too=True):
        """The transcript of a file, by path, else by unique name."""
        if str(Path(file).resolve()) in by_path:
            return by_path[str(Path(file).resolve())]
        texts = by_name.get(Path(file).name, []) if by_name_too else []
        return texts[0] if len(texts) == 1 else None

    return lookup, example


def _with_transcripts(jobs, transcripts):
    """The jobs with the transcripts of a ``--transcripts`` CSV; refuses a
    CSV that matches no input and warns of inputs it does not cover."""
    lookup, example = _transcript_lookup(transcripts)
    wanted = [file for file, text in jobs if file is not None and text is None]
    names = Counter(Path(file).name for file in wanted)
    # a name shared by two inputs tells neither apart
    found = {file: lookup(file, names[Path(file).name] == 1) for file in wanted}
    missed = [file for file, text in found.items() if text is None]
    if wanted and len(missed) == len(wanted):
        shown = (
            f"its first path {example[0]!r} reads as {example[1]}"
            if example
            else "it has no rows"
        )
        raise UsageError(
            f"{transcripts}: no transcript matches an input ({shown}; an "
            f"input is {wanted[0]}); relative paths are read against the "
            "CSV's folder, else the current folder"
        )
    if missed:
        print(
            f"mtmm predict: warning: {transcripts}: no transcript for "
            f"{len(missed)} of {len(wanted)} inputs (e.g. {missed[0]}); "
            "they are transcribed by the ASR model, if any, or predicted "
            "from audio alone",
            file=sys.stderr,
        )
    return [(f, t if t is not None else found[f]) for f, t in jobs]


class _Writer:
    """Writes one JSON line or CSV row per input, flushed as it goes."""

    def __init__(
        self, stream, fmt, labels, dims, scale=RATING_SCALE, ensemble=False
    ):
        self.stream, self.fmt = stream, fmt
        if fmt == "csv":
            columns = ["file", *(["label"] if labels else []), "path"]
            columns += [*dims, *(rating_key(d, scale) for d in dims)]
            columns += [f"p_{label}" for label in labels]
            columns += ["windows", "text_used", "warning"]
            columns += [*(["ensemble"] if ensemble else []), "error"]
            self.csv = csv.DictWriter(stream, columns, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, row):
        """Writes one prediction row in the output format."""
        row = _rounded(row)
        if self.fmt == "csv":
            flat = {k: v for k, v in row.items() if k != "probs"}
            for label, p in row.get("probs", {}).items():
                flat[f"p_{label}"] = p
            self.csv.writerow(flat)
        else:
            self.stream.write(json.dumps(row) + "\n")
        self.stream.flush()


#: The challenge's attribute columns, in its order
SUBMISSION_DIMENSIONS = (
    ("EmoAct", "arousal"),
    ("EmoVal", "valence"),
    ("EmoDom", "dominance"),
)


def check_submission_model(labels, scale):
    """Refuses a model whose outputs are not the challenge's.

    Arguments
    ---------
    labels : list of str
        The model's classes (the challenge's 8, in its order; empty: it
        was not trained to predict classes).
    scale : sequence of float
        Its rating scale (1-7).

    Example
    -------
    >>> check_submission_model(list(CLASSES.values()), [1, 7])
    >>> check_submission_model(["neu", "hap", "sad", "ang"], [1, 5])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.predict.UsageError: the model predicts \
['neu', 'hap', 'sad', 'ang'] on [1, 5], not MSP-Podcast's classes \
['ang', 'sad', 'hap', 'sur', 'fea', 'dis', 'con', 'neu'] on [1, 7]: was it \
trained with the MSP-Podcast recipe?
    """
    if not labels:
        raise UsageError(
            "the model was not trained to predict classes (w_ce: 0): the "
            "challenge's submission needs them"
        )
    if list(labels) != list(CLASSES.values()) or list(scale) != [1, 7]:
        raise UsageError(
            f"the model predicts {list(labels)} on {list(scale)}, not "
            f"MSP-Podcast's classes {list(CLASSES.values())} on [1, 7]: was "
            "it trained with the MSP-Podcast recipe?"
        )


def write_submission(
    rows, folder, labels=None, scale=RATING_SCALES["msp-podcast"]
):
    """The MSP-Podcast challenge's files for predictions of Test3.

    Writes ``categorical.csv`` (``FileName,EmoClass``: the class code,
    A S H U F D C N) and, when the model predicts arousal, valence and
    dominance, ``attributes.csv`` (``FileName,EmoAct,EmoVal,EmoDom`` on the
    1-7 scale, clipped to it), one row per file in file-name order. The
    baselines write these columns (MSP_PODCAST.md, section 1.6); check the
    challenge's current instructions before submitting.

    Arguments
    ---------
    rows : list of dict
        Prediction results (``file``, ``label``, the dimensions on 0-1).
    folder : str or os.PathLike
        Where the two files go.
    labels : list of str, optional
        The model's classes: they must be the challenge's 8, in its order
        (default: taken as such).
    scale : tuple of float
        The rating scale the model was trained on: it must be 1-7.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    UsageError
        When the model's classes or rating scale are not the challenge's.

    Example
    -------
    >>> rows = [{"file": "a/MSP-PODCAST_test3_0002.wav", "label": "sad",
    ...          "valence": 0.0, "arousal": 1.0, "dominance": 0.5},
    ...         {"file": "MSP-PODCAST_test3_0001.wav", "label": "ang",
    ...          "valence": 0.5, "arousal": 0.5, "dominance": 0.5}]
    >>> folder = getfixture("tmp_path")
    >>> [p.name for p in write_submission(rows, folder)]
    ['categorical.csv', 'attributes.csv']
    >>> print((folder / "attributes.csv").read_text().strip())
    FileName,EmoAct,EmoVal,EmoDom
    MSP-PODCAST_test3_0001.wav,4.0,4.0,4.0
    MSP-PODCAST_test3_0002.wav,7.0,1.0,4.0
    """
    codes = {label: code for code, label in CLASSES.items()}
    check_submission_model(labels or list(CLASSES.values()), scale)
    rows = sorted(rows, key=lambda r: Path(r["file"]).name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "categorical.csv"]
    with open(written[0], "w", newline="", encoding="utf-8") as fout:
        out = csv.writer(fout)
        out.writerow(["FileName", "EmoClass"])
        for row in rows:
            out.writerow([Path(row["file"]).name, codes[row["label"]]])
    if all(name in rows[0] for _, name in SUBMISSION_DIMENSIONS):
        written.append(folder / "attributes.csv")
        low, high = scale
        with open(written[1], "w", newline="", encoding="utf-8") as fout:
            out = csv.writer(fout)
            out.writerow(["FileName", *(c for c, _ in SUBMISSION_DIMENSIONS)])
            for row in rows:
                ratings = [
                    round(min(max(to_rating(row[n], scale), low), high), 4)
                    for _, n in SUBMISSION_DIMENSIONS
                ]
                out.writerow([Path(row["file"]).name, *ratings])
    return written


def _rounded(value):
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


#: How a model folder is run: PyTorch, or its ONNX graphs (fp32, int8)
def load_recognizer(
    model, asr_source=None, device="cpu", backend="torch", trust=False
):
    """The recognizer of a model folder, or a :class:`UsageError`.

    Arguments
    ---------
    model : str
        A folder written by ``mtmm export``, or its hub id.
    asr_source : str, optional
        ASR model for missing transcripts (replaces the folder's).
    device : str
        Where the model runs (the ONNX backends run on the CPU).
    backend : str
        One of :data:`BACKENDS`.
    trust : bool
        ``trust_remote_code``: let the model's ``hyperparams.yaml`` run
        code an export does not write (PyTorch backend).

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
                model,
                overrides=overrides,
                run_opts={"device": device},
                trust_remote_code=trust,
            )
        return MultimodalEmotionRecognizer.from_onnx(
            model, int8=backend == "onnx-int8", overrides=overrides
        )
    except (OSError, ValueError, RuntimeError) as error:  # bad input only
        raise UsageError(f"cannot load the model {model}: {error}") from None


def _predict_one(recognizer, file, text):
    try:
        if file is None:
            return {"file": None, **recognizer.predict_text(text)}
        return recognizer.predict_file(file, text)
    # one bad input must not stop the others; a bug still stops it all
    except (OSError, ValueError, RuntimeError, ArithmeticError) as error:
        return {"file": file, "error": f"{type(error).__name__}: {error}"}


def load_models(
    models,
    weights=None,
    asr_source=None,
    device="cpu",
    backend="torch",
    trust=False,
):
    """One recognizer, or an ensemble of several, or a :class:`UsageError`.

    Arguments
    ---------
    models : str or sequence of str
        Model folders, hub ids or sweep export folders
        (:func:`~speechbrain_mtmm.inference.ensemble.model_folders`).
    weights : sequence of float, optional
        One weight per model (an ensemble; default equal).
    asr_source : str, optional
        ASR model for missing transcripts (replaces each model's).
    device : str
        Where the models run.
    backend : str
        One of :data:`BACKENDS`, for every model.
    trust : bool
        ``trust_remote_code`` for every model.

    Returns
    -------
    MultimodalEmotionRecognizer or EnsembleRecognizer
        The model itself when there is one and no weights.

    Example
    -------
    >>> load_models(["model_a", "model_b"], weights=[1.0])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.predict.UsageError: 1 weights for 2 models: \
give one weight per --model
    """
    members = model_folders(models)
    try:  # a wrong count is refused before any model is loaded
        normalised_weights(weights, len(members))
    except EnsembleError as error:
        raise UsageError(str(error)) from None
    recognizers = [
        load_recognizer(m, asr_source, device, backend, trust) for m in members
    ]
    if len(recognizers) == 1 and weights is None:
        return recognizers[0]
    try:
        return EnsembleRecognizer(recognizers, weights, names=members)
    except EnsembleError as error:
        raise UsageError(str(error)) from None


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
    trust_remote_code=False,
    weights=None,
):
    """Predicts every input and writes one row each (see the module doc).

    Arguments
    ---------
    model : str or sequence of str
        A folder written by ``mtmm export`` (its hub id, or a sweep's
        export folder); several: an ensemble.
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
        ``"json"`` (one object per line), ``"csv"`` or ``"msp-podcast"``
        (the challenge's submission files, :func:`write_submission`).
    output : str, optional
        Output file (default: stdout); the folder of the submission files
        with ``msp-podcast``.
    backend : str
        ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (``mtmm export
        --onnx [--int8]``).
    trust_remote_code : bool
        Let the model run code an export does not write (only for a
        model you trust; see ``from_hparams``).
    weights : sequence of float, optional
        One weight per model of an ensemble (normalised; default equal).

    Returns
    -------
    int
        0: all inputs predicted; 1: some failed; 2: usage error.
    """
    if fmt == "msp-podcast" and not output:
        print(
            "mtmm predict: error: --format msp-podcast writes two files: "
            "give their folder with --output",
            file=sys.stderr,
        )
        return 2
    try:
        jobs = collect_inputs(list(inputs), text, transcripts)
        recognizer = load_models(
            model, weights, asr_source, device, backend, trust_remote_code
        )
    except UsageError as error:
        print(f"mtmm predict: error: {error}", file=sys.stderr)
        return 2
    members = getattr(recognizer, "members", [recognizer])
    names = getattr(recognizer, "names", model_folders(model))
    shares = getattr(recognizer, "weights", [1.0])
    if len(members) > 1:
        print(f"ensemble of {len(members)} models", file=sys.stderr)
    for member, name, share in zip(members, names, shares):
        where = getattr(member.system, "folder", None) or Path(name).resolve()
        weight = f", weight {share:.4g}" if len(members) > 1 else ""
        print(f"model: {where} ({backend}{weight})", file=sys.stderr)
    config = recognizer.system.config
    scale = config.get("rating_scale", RATING_SCALE)
    if fmt == "msp-podcast":
        return _predict_submission(recognizer, jobs, output, scale)
    stream = sys.stdout
    if output:
        stream = open(output, "w", newline="", encoding="utf-8")
    counts = Counter()
    try:
        writer = _Writer(
            stream,
            fmt,
            # only the outputs the model was trained for
            recognizer.labels if classes_trained(config) else [],
            trained_dimensions(config),
            scale,
            ensemble=len(members) > 1,
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


def _predict_submission(recognizer, jobs, folder, scale):
    """Predicts every job and writes the challenge's files; any failed
    input fails the submission (it must hold every file)."""
    try:
        config = recognizer.system.config
        check_submission_model(
            recognizer.labels if classes_trained(config) else [], scale
        )
    except UsageError as error:
        print(f"mtmm predict: error: {error}", file=sys.stderr)
        return 2
    rows = []
    for file, transcript in tqdm(jobs, unit="file", file=sys.stderr):
        row = _predict_one(recognizer, file, transcript)
        if "error" in row:
            print(f"mtmm predict: error: {row['error']}", file=sys.stderr)
            return 1
        rows.append(row)
    try:
        written = write_submission(rows, folder, recognizer.labels, scale)
    except UsageError as error:
        print(f"mtmm predict: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path} ({len(rows)} files)", file=sys.stderr)
    return 0
