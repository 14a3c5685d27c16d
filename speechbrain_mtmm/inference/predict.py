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
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
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
from speechbrain_mtmm.inference.shards import (
    PartWriter,
    ShardError,
    check_plan,
    finished_rows,
    make_plan,
    parse_shard,
    part_name,
    part_status,
    parts_folder,
    read_parts,
    read_plan,
    shard_bounds,
    torchrun_shard,
    write_plan,
)
from speechbrain_mtmm.run_folder import (
    RATING_SCALE,
    RATING_SCALES,
    classes_trained,
    rating_key,
    to_rating,
    trained_dimensions,
)
from speechbrain_mtmm.slurm import (
    Command,
    SlurmError,
    SlurmResources,
    run_commands,
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
    shards=None,
    shard=None,
    merge=True,
    launcher="local",
    slurm=None,
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
    shards : int, optional
        Predict in this many local processes, each writing its part next
        to ``output``, then merge the parts (:func:`run_local_shards`).
    shard : str, optional
        ``"I/N"``: predict only shard I (from 0) of N into its part
        (:func:`run_shard`); under torchrun (``WORLD_SIZE`` > 1) each
        process is shard ``RANK`` of ``WORLD_SIZE`` without it.
    merge : bool
        With ``shard`` (or torchrun): merge the parts into ``output``
        when this shard finds them all finished.
    launcher : str
        ``"local"``: the ``shards`` are processes here; ``"slurm"``: each
        is a SLURM job (:mod:`speechbrain_mtmm.slurm`).
    slurm : dict, optional
        :meth:`~speechbrain_mtmm.slurm.SlurmResources.from_options`'s
        arguments, for ``launcher="slurm"``.

    Returns
    -------
    int
        0: all inputs predicted (a shard: its part finished); 1: some
        failed; 2: usage error.
    """
    if fmt == "msp-podcast" and not output:
        print(
            "mtmm predict: error: --format msp-podcast writes two files: "
            "give their folder with --output",
            file=sys.stderr,
        )
        return 2
    request = {
        "model": model,
        "inputs": list(inputs),
        "text": text,
        "transcripts": transcripts,
        "asr_source": asr_source,
        "device": device,
        "fmt": fmt,
        "output": output,
        "backend": backend,
        "trust_remote_code": trust_remote_code,
        "weights": weights,
        "launcher": launcher,
        "slurm": slurm or {},
    }
    try:
        if launcher != "local" and shards is None:
            raise UsageError(f"--launcher {launcher} runs --shards N: give it")
        mode = shard_mode(shards, shard, output)
        jobs = collect_inputs(list(inputs), text, transcripts)
        if mode is not None and mode[0] == "local":
            return run_local_shards(jobs, mode[1], request)
        if mode is not None:
            return run_shard(jobs, *mode[1:], request, merge)
    except (UsageError, ShardError, SlurmError) as error:
        print(f"mtmm predict: error: {error}", file=sys.stderr)
        return 2
    try:
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


# ##### Sharded prediction (bookkeeping in inference/shards.py) #####


def shard_mode(shards=None, shard=None, output=None, environ=None):
    """How a ``mtmm predict`` run is sharded.

    Arguments
    ---------
    shards : int, optional
        ``--shards N``: N local processes, then the merge.
    shard : str, optional
        ``--shard I/N``: this process predicts shard I of N.
    output : str, optional
        ``--output`` (required by both: the parts go next to it).
    environ : mapping, optional
        The environment (default ``os.environ``): under torchrun
        (``WORLD_SIZE`` > 1) each process is shard ``RANK``.

    Returns
    -------
    tuple or None
        None (one process), ``("local", N)`` or ``("shard", I, N,
        local_rank or None)``.

    Raises
    ------
    UsageError
        Conflicting or bad options.

    Example
    -------
    >>> shard_mode(None, "2/4", "out.jsonl", {})
    ('shard', 2, 4, None)
    >>> shard_mode(None, None, "out.jsonl", {"RANK": "1", "WORLD_SIZE": "2"})
    ('shard', 1, 2, 1)
    >>> shard_mode(2, None, None, {})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.predict.UsageError: --shards writes each \
shard's part next to the output: give --output
    """
    torchrun = torchrun_shard(environ)
    if shards is not None and shard is not None:
        raise UsageError("give --shards N (local) or --shard I/N, not both")
    if shards is not None and torchrun is not None:
        raise UsageError(
            "under torchrun each process is one shard (RANK of WORLD_SIZE): "
            "leave out --shards"
        )
    what = (
        "--shards"
        if shards is not None
        else "--shard"
        if shard is not None
        else "torchrun"
        if torchrun is not None
        else None
    )
    if what is None:
        return None
    if not output:
        raise UsageError(
            f"{what} writes each shard's part next to the output: give --output"
        )
    if shards is not None:
        if shards < 1:
            raise UsageError(f"--shards {shards}: give 1 or more")
        return "local", shards
    if shard is not None:
        try:
            return ("shard", *parse_shard(shard), None)
        except ShardError as error:
            raise UsageError(str(error)) from None
    return ("shard", *torchrun)


def _columns(recognizer):
    """What writing the output needs from the model (kept in the plan,
    so that merging needs no model)."""
    config = recognizer.system.config
    return {
        "labels": recognizer.labels if classes_trained(config) else [],
        "dimensions": trained_dimensions(config),
        "rating_scale": list(config.get("rating_scale", RATING_SCALE)),
        "ensemble": len(getattr(recognizer, "members", [recognizer])) > 1,
    }


def _shard_device(device, index):
    """``cuda`` as the shard's own GPU (index modulo the GPUs here)."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{index % torch.cuda.device_count()}"
    return device


def _plan(jobs, shards, request):
    """The plan of a sharded run of ``request`` (:func:`make_plan`)."""
    return make_plan(
        jobs,
        shards,
        model_folders(request["model"]),
        request["backend"],
        request["asr_source"],
        request.get("weights"),
    )


def run_shard(jobs, index, shards, local_rank, request, merge=True):
    """Predicts shard ``index`` of ``shards`` into its part, resuming an
    unfinished part and skipping a finished one; merges the parts into
    the output when they are all finished (and ``merge``).

    Arguments
    ---------
    jobs : list of tuple
        Every input, in order (:func:`collect_inputs`).
    index : int
        This shard, from 0.
    shards : int
        Number of shards.
    local_rank : int or None
        torchrun's ``LOCAL_RANK`` (picks the GPU of ``--device cuda``).
    request : dict
        :func:`run_predict`'s arguments.
    merge : bool
        Merge when every part is finished.

    Returns
    -------
    int
        0: its part is finished (its failed inputs count in the merged
        output's exit code, so that torchrun does not stop the other
        shards); with the merge, 1 when any input failed; 2: usage error.
    """
    folder = parts_folder(request["output"])
    plan = _plan(jobs, shards, request)
    check_plan(folder, plan)  # before loading the model
    start, stop = shard_bounds(len(jobs), index, shards)
    part = folder / part_name(index, shards)
    name = f"shard {index} of {shards}"
    writer = None
    if finished_rows(part) is None:
        folder.mkdir(parents=True, exist_ok=True)
        writer = PartWriter(part, [file for file, _ in jobs[start:stop]])
    if writer is not None and writer.done == stop - start:
        # an empty slice (more shards than inputs), or every row written
        # by a shard killed before its marker: nothing to predict
        with writer:
            writer.finish()
    elif writer is not None:
        device = request["device"]
        device = _shard_device(
            device, index if local_rank is None else local_rank
        )
        recognizer = load_models(
            request["model"],
            request.get("weights"),
            request["asr_source"],
            device,
            request["backend"],
            request["trust_remote_code"],
        )
        names = getattr(recognizer, "names", model_folders(request["model"]))
        print(
            f"model: {', '.join(names)} ({request['backend']})",
            file=sys.stderr,
        )
        columns = _columns(recognizer)
        if request["fmt"] == "msp-podcast":
            check_submission_model(columns["labels"], columns["rating_scale"])
        write_plan(folder, plan, columns)
        todo = jobs[start + writer.done : stop]
        print(
            f"{name}: inputs {start + writer.done}-{stop - 1} "
            f"({writer.done} done before) -> {part}",
            file=sys.stderr,
        )
        with writer:
            for file, transcript in tqdm(
                todo, unit="file", disable=len(todo) < 2, file=sys.stderr
            ):
                row = _predict_one(recognizer, file, transcript)
                if "error" in row:
                    tqdm.write(f"error: {row['error']}", file=sys.stderr)
                writer.write(row)
            writer.finish()
    else:
        print(f"{name}: {part} is finished, skipped", file=sys.stderr)
    status = part_status(folder, plan, len(jobs))
    if not merge or not all(status):
        then = (
            "the last shard to finish merges them"
            if merge
            else f"merge them with --shards {shards}"
        )
        print(
            f"{name}: {sum(status)} of {shards} parts finished; {then}",
            file=sys.stderr,
        )
        return 0
    return merge_parts(request["output"], request["fmt"])


def merge_parts(output, fmt="json"):
    """Writes the output of a sharded run from its finished parts, in
    input order, as one process writes it (replaced atomically, so that
    shards finishing together may both merge).

    Arguments
    ---------
    output : str or os.PathLike
        The output file (the folder of ``msp-podcast``); its parts are in
        ``<output>.parts``.
    fmt : str
        ``"json"``, ``"csv"`` or ``"msp-podcast"``.

    Returns
    -------
    int
        0: every input predicted; 1: some failed (no ``msp-podcast``
        files then: a submission must hold every file).

    Raises
    ------
    ShardError
        No plan, a part unfinished or changed since it was finished.
    """
    folder = parts_folder(output)
    plan = read_plan(folder)
    if plan is None or "labels" not in plan:
        raise ShardError(
            f"{folder}: no parts to merge (no {folder.name}/plan.json); run "
            "the shards first"
        )
    rows = [json.loads(line) for line in read_parts(folder, plan)]
    failed = [row for row in rows if "error" in row]
    scale = plan["rating_scale"]
    if fmt == "msp-podcast":
        for row in failed:
            print(f"mtmm predict: error: {row['error']}", file=sys.stderr)
        if failed:
            return 1
        output = Path(output)
        tmp = output.with_name(f"{output.name}.{os.getpid()}.tmp")
        for path in write_submission(rows, tmp, plan["labels"], scale):
            output.mkdir(parents=True, exist_ok=True)
            os.replace(path, output / path.name)  # each file atomically
            print(
                f"wrote {output / path.name} ({len(rows)} files)",
                file=sys.stderr,
            )
        tmp.rmdir()
        return 0
    text = io.StringIO(newline="")
    writer = _Writer(
        text,
        fmt,
        plan["labels"],
        plan["dimensions"],
        scale,
        ensemble=plan.get("ensemble", False),
    )
    for row in rows:
        writer.write(row)
    tmp = f"{output}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fout:
        fout.write(text.getvalue())
    os.replace(tmp, output)
    print(
        f"merged {plan['shards']} parts ({len(rows)} rows) into {output}",
        file=sys.stderr,
    )
    if failed:
        print(
            f"mtmm predict: {len(failed)} of {len(rows)} inputs failed",
            file=sys.stderr,
        )
        return 1
    return 0


def shard_command(request, index, shards, merge=False):
    """The ``mtmm predict`` command line of one shard, for any launcher
    (a local process, a SLURM array task, a job of another scheduler).

    Arguments
    ---------
    request : dict
        :func:`run_predict`'s arguments by name (``model``, ``inputs``,
        ``output``, ``fmt``; optional ``text``, ``transcripts``,
        ``asr_source``, ``device``, ``backend``, ``trust_remote_code``).
    index : int
        The shard, from 0.
    shards : int
        Number of shards.
    merge : bool
        Let the shard merge the parts when it finds them all finished
        (without: ``--no_merge``).

    Returns
    -------
    list of str

    Example
    -------
    >>> request = {"model": "m", "inputs": ["a.csv"], "output": "o.csv",
    ...            "fmt": "csv", "device": "cpu", "backend": "torch"}
    >>> shard_command(request, 1, 4)[3:]
    ['predict', '--model', 'm', 'a.csv', '--format', 'csv', '--device', \
'cpu', '--backend', 'torch', '--output', 'o.csv', '--shard', '1/4', \
'--no_merge']
    """
    command = [sys.executable, "-m", "speechbrain_mtmm", "predict"]
    models = request["model"]
    for model in [models] if isinstance(models, (str, Path)) else models:
        command += ["--model", str(model)]
    command += list(map(str, request["inputs"]))
    for option, key in (
        ("--text", "text"),
        ("--transcripts", "transcripts"),
        ("--asr_source", "asr_source"),
        ("--format", "fmt"),
        ("--device", "device"),
        ("--backend", "backend"),
        ("--output", "output"),
    ):
        if request.get(key) is not None:
            command += [option, str(request[key])]
    if request.get("trust_remote_code"):
        command.append("--trust_remote_code")
    if request.get("weights"):
        command += ["--weights", *map(str, request["weights"])]
    command += ["--shard", f"{index}/{shards}"]
    return command + ([] if merge else ["--no_merge"])


def _progress(bar, rows):
    """Moves the progress bar to ``rows`` (drawn only when it moved)."""
    if rows > bar.n:
        bar.update(rows - bar.n)


def _count_rows(parts, counted):
    """Rows written so far to each part (new bytes only are read)."""
    total = 0
    for part in parts:
        seen, rows = counted.get(part, (0, 0))
        try:
            with open(part, "rb") as fin:
                fin.seek(seen)
                data = fin.read()
        except FileNotFoundError:
            data = b""
        counted[part] = (seen + len(data), rows + data.count(b"\n"))
        total += counted[part][1]
    return total


def run_local_shards(jobs, shards, request, poll=0.5):
    """``mtmm predict --shards N``: one process per unfinished shard
    (:func:`shard_command`, each with its share of the CPU threads and its
    log in the parts folder), then the merge.

    With fewer inputs than ``shards``, one shard per input.

    Arguments
    ---------
    jobs : list of tuple
        Every input, in order.
    shards : int
        Number of shards.
    request : dict
        :func:`run_predict`'s arguments.
    poll : float
        Seconds between progress updates.

    Returns
    -------
    int
        As :func:`run_predict`: 0, 1 (some inputs failed, or a shard
        ended without finishing its part: run the same command again to
        resume it) or 2.
    """
    if shards > len(jobs):
        print(
            f"mtmm predict: {len(jobs)} inputs: {len(jobs)} shards, not "
            f"{shards}",
            file=sys.stderr,
        )
        shards = len(jobs)
    folder = parts_folder(request["output"])
    plan = _plan(jobs, shards, request)
    check_plan(folder, plan)
    status = part_status(folder, plan, len(jobs))
    todo = [index for index, done in enumerate(status) if not done]
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        if request.get("launcher") == "slurm":
            failed = _run_slurm_shards(folder, todo, shards, request)
        else:
            failed = _run_workers(
                folder, todo, shards, len(jobs), request, poll
            )
        if failed:
            return failed
    return merge_parts(request["output"], request["fmt"])


def _run_slurm_shards(folder, todo, shards, request):
    """Runs the shards ``todo`` as one SLURM job array (each task the
    shard's own command line, run in this folder; the job ids recorded in
    the parts folder, so a rerun waits for those still queued or running);
    0 when all finished, else 1 (each failed shard is reported with its
    log's last lines)."""
    resources = SlurmResources.from_options(**request.get("slurm", {}))
    commands = [
        Command(
            part_name(index, shards),
            tuple(shard_command(request, index, shards)),
            os.getcwd(),
            str(folder / part_name(index, shards).replace(".jsonl", ".log")),
        )
        for index in todo
    ]
    failed = run_commands(
        commands,
        folder,
        resources,
        succeeded=lambda command, state: (
            finished_rows(folder / command.name) is not None
        ),
        desc="shards",
    )
    if failed:
        print(
            f"mtmm predict: {len(failed)} of {len(todo)} shards did not "
            "finish; run the same command again to resume them",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _run_workers(folder, todo, shards, count, request, poll):
    """Runs the shards ``todo`` as processes; 0 when all finished, else
    the exit code, with a line per failed shard naming its log."""
    threads = str(max(1, (os.cpu_count() or 1) // len(todo)))
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    workers = {}
    try:
        for index in todo:
            log = folder / part_name(index, shards).replace(".jsonl", ".log")
            with open(log, "a", encoding="utf-8") as stderr:
                workers[index] = (
                    subprocess.Popen(
                        shard_command(request, index, shards),
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        env=env,
                    ),
                    log,
                )
        parts = [folder / part_name(i, shards) for i in range(shards)]
        counted = {}
        with tqdm(
            total=count, unit="file", file=sys.stderr, disable=count < 2
        ) as bar:
            while any(w.poll() is None for w, _ in workers.values()):
                _progress(bar, _count_rows(parts, counted))
                time.sleep(poll)
            _progress(bar, _count_rows(parts, counted))
    finally:  # Ctrl-C, or an error here: no shard left running
        for worker, _ in workers.values():
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
    failed = {
        index: (worker.returncode, log)
        for index, (worker, log) in workers.items()
        if worker.returncode != 0
    }
    usage = [index for index, (code, _) in failed.items() if code == 2]
    for index in usage[:1] or failed:  # a usage error: the same in each
        code, log = failed[index]
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        last = lines[-1] if lines else "(its log is empty)"
        if code == 2:
            print(f"{last} (shard {index} of {shards})", file=sys.stderr)
            continue
        print(
            f"mtmm predict: shard {index} of {shards} ended with exit code "
            f"{code} ({last}; its log: {log}); run the same command again "
            "to resume it",
            file=sys.stderr,
        )
    return 2 if usage else 1 if failed else 0
