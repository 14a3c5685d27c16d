"""The run folder and the sweep folder: every file name, writer and reader.

A run folder is a contract between the recipe that writes it and the
experiments and inference code that read it; this module is the only one
that spells out its file names, formats and the rating scale of the
dimensions. Layout of one run (``output_folder`` of ``train.py``)::

    <run>/
        hyperparams.yaml         the resolved hyperparameters (SpeechBrain)
        train_log.txt            one line per epoch, then the test line
        run_config.json          the settings it was trained with
        save/CKPT+*/             checkpoints (system.ckpt, counter.ckpt, ...)
        test_results.json        whole-test-set metrics of the selected
                                 checkpoint (WA, UA, macro_F1, CCC_*, ...)
        test_predictions.jsonl   one JSON object per test utterance
        test2_predictions.jsonl  the same for another test set (MSP-Podcast)
        stdout.log               what the run printed (CV runner only)
        run.lock                 held by the process that trains into it

and of a sweep (``mtmm cv``)::

    <sweep>/<protocol>_fold<k>/seed<s>/   one run folder each
    <sweep>/cv_results.json, cv_results.csv, report.md, *.png
    <sweep>/table.md, table.json          (``mtmm table``)
    <sweep>/sweep.lock                    held by the CV runner

Dimensions are rated 1-5 in IEMOCAP, 1-7 in MSP-Podcast and on a scale of
its own in a CSV corpus (``rating_scale`` of the model configuration); the
model predicts them on 0-1 (:func:`to_unit`, :func:`to_rating`). Prediction
files and reports use the corpus' ratings, inference results give both.

It imports only the leaf module that writes files atomically
(:mod:`speechbrain_mtmm.atomic`): every other layer may use it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json
import re
from pathlib import Path

from speechbrain_mtmm.atomic import write_json, write_text

DIMENSIONS = ("valence", "arousal", "dominance")
#: The rating scale of valence, arousal and dominance of each corpus with
#: one (a CSV corpus states its own when it is prepared)
RATING_SCALES = {"iemocap": (1.0, 5.0), "msp-podcast": (1.0, 7.0)}
#: The scale of runs and exports that do not record theirs (IEMOCAP's)
RATING_SCALE = RATING_SCALES["iemocap"]

#: The tasks a loss can weigh: the classes and each dimension
TASKS = ("classes", *DIMENSIONS)

HYPERPARAMS = "hyperparams.yaml"
TRAIN_LOG = "train_log.txt"
SAVE_FOLDER = "save"
TEST_RESULTS = "test_results.json"
TEST_PREDICTIONS = "test_predictions.jsonl"
STDOUT_LOG = "stdout.log"
RUN_CONFIG = "run_config.json"  # the settings the run was trained with
RUN_LOCK = "run.lock"  # see speechbrain_mtmm.locks
SWEEP_LOCK = "sweep.lock"
SWEEP_PLAN = "sweep.json"  # protocol, folds and seeds a sweep was run with
CV_RESULTS_JSON = "cv_results.json"
CV_RESULTS_CSV = "cv_results.csv"
REPORT = "report.md"
TABLE_MD = "table.md"
TABLE_JSON = "table.json"
# an exported model folder (mtmm export)
EXPORT_INFO = "export_info.json"
#: The key of export_info.json holding the digest of its own content
SELF_DIGEST = "self_sha256"

_EPOCH_RE = re.compile(r"^epoch: (\d+)\b")
_STAT_RE = re.compile(
    r"\b(train|valid) (\w+): ([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))"
)


def to_unit(rating, scale=RATING_SCALE):
    """A rating on the model's 0-1 scale.

    Arguments
    ---------
    rating : float or torch.Tensor
        On ``scale``.
    scale : tuple of float
        Lowest and highest rating (IEMOCAP: 1-5, MSP-Podcast: 1-7).

    Returns
    -------
    float or torch.Tensor

    Example
    -------
    >>> to_unit(1.0), to_unit(3.0), to_unit(5.0)
    (0.0, 0.5, 1.0)
    >>> to_unit(4.0, scale=(1, 7))
    0.5
    """
    low, high = scale
    return (rating - low) / (high - low)


def to_rating(unit, scale=RATING_SCALE):
    """A 0-1 model output on a rating scale.

    Arguments
    ---------
    unit : float or torch.Tensor
        On the 0-1 scale.
    scale : tuple of float
        Lowest and highest rating.

    Returns
    -------
    float or torch.Tensor

    Example
    -------
    >>> to_rating(0.0), to_rating(0.25), to_rating(1.0)
    (1.0, 2.0, 5.0)
    >>> to_rating(0.5, scale=(1, 7))
    4.0
    """
    low, high = scale
    return low + (high - low) * unit


def rating_key(name, scale=RATING_SCALE):
    """The key of a dimension on its rating scale in inference results.

    Arguments
    ---------
    name : str
        A dimension.
    scale : tuple of float
        Its rating scale.

    Returns
    -------
    str

    Example
    -------
    >>> rating_key("valence"), rating_key("arousal", (1, 7))
    ('valence_1to5', 'arousal_1to7')
    """
    low, high = scale
    return f"{name}_{low:g}to{high:g}"


def trained_dimensions(config):
    """The dimensions a model was trained to predict, in its output order.

    A dimension with loss weight 0 was never trained: its output is not a
    prediction, so nothing reports, exports or predicts it. A model
    configuration without ``loss_weights`` (exports made before it was
    recorded) has trained every dimension it predicts.

    Arguments
    ---------
    config : dict
        A model configuration (``n_dims``, optional ``loss_weights``).

    Returns
    -------
    list of str

    Example
    -------
    >>> trained_dimensions({"n_dims": 2})
    ['valence', 'arousal']
    >>> trained_dimensions({"n_dims": 3, "loss_weights": {
    ...     "classes": 1.0, "valence": 0.0, "arousal": 0.5, "dominance": 0.5}})
    ['arousal', 'dominance']
    """
    weights = config.get("loss_weights")
    return [
        name
        for name in DIMENSIONS[: config["n_dims"]]
        if weights is None or weights.get(name, 0) > 0
    ]


def classes_trained(config):
    """Whether a model was trained to predict classes (loss weight > 0).

    Arguments
    ---------
    config : dict
        A model configuration (optional ``loss_weights``; without it, yes).

    Returns
    -------
    bool

    Example
    -------
    >>> classes_trained({"loss_weights": {"classes": 0.0, "valence": 1.0}})
    False
    >>> classes_trained({})
    True
    """
    weights = config.get("loss_weights")
    return weights is None or weights.get("classes", 0) > 0


def prediction_row(
    utt_id,
    emo,
    pred_emo,
    probs,
    dims,
    pred_dims,
    scale=RATING_SCALE,
    names=DIMENSIONS,
    **extra,
):
    """One line of ``test_predictions.jsonl``.

    Arguments
    ---------
    utt_id : str
        Utterance id.
    emo, pred_emo : str
        True and predicted class (``pred_emo`` None: the classes were not
        trained, and the row has no prediction of them).
    probs : dict
        Label -> probability.
    dims, pred_dims : sequence of float
        True and predicted dimensions on the 0-1 scale, in
        ``names`` order; a true value that is not a number (not rated)
        is written as None.
    scale : tuple of float
        The rating scale the rows are written on.
    names : sequence of str
        The dimensions given (those the model was trained to predict).
    **extra
        More fields (``speaker``, ``improvised``, ...).

    Returns
    -------
    dict
        Probabilities rounded to 5 decimals, dimensions on ``scale``
        rounded to 4.

    Example
    -------
    >>> prediction_row("u1", "neu", "hap", {"neu": 0.25, "hap": 0.75},
    ...                [0.5, 1.0], [0.25, 0.75], speaker="Ses01F")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'id': 'u1', 'emo': 'neu', 'pred_emo': 'hap',
     'probs': {'neu': 0.25, 'hap': 0.75}, 'valence': 3.0,
     'pred_valence': 2.0, 'arousal': 5.0, 'pred_arousal': 4.0,
     'speaker': 'Ses01F'}
    """
    row = {"id": utt_id, "emo": emo}
    if pred_emo is not None:
        row["pred_emo"] = pred_emo
        row["probs"] = {label: round(float(p), 5) for label, p in probs.items()}
    for name, true, pred in zip(names, dims, pred_dims):
        true = float(true)
        row[name] = None if true != true else round(to_rating(true, scale), 4)
        row[f"pred_{name}"] = round(to_rating(float(pred), scale), 4)
    row.update(extra)
    return row


def write_test_outputs(folder, results, rows):
    """Writes ``test_results.json`` and ``test_predictions.jsonl``.

    The predictions are written first: a run counts as complete once its
    results file exists (:func:`is_complete`).

    Arguments
    ---------
    folder : str or path-like
        The run folder.
    results : dict
        Whole-test-set metrics.
    rows : list of dict
        :func:`prediction_row` rows.
    """
    folder = Path(folder)
    write_text(
        folder / TEST_PREDICTIONS, "".join(json.dumps(r) + "\n" for r in rows)
    )
    write_json(folder / TEST_RESULTS, results)


def predictions_file(name):
    """The predictions file of another test set than ``test``.

    Arguments
    ---------
    name : str
        The test set (MSP-Podcast: ``test2``).

    Returns
    -------
    str

    Example
    -------
    >>> predictions_file("test2")
    'test2_predictions.jsonl'
    """
    return f"{name}_predictions.jsonl"


def write_test_set(folder, name, rows):
    """Writes the predictions of another test set than ``test``.

    Arguments
    ---------
    folder : str or path-like
        The run folder.
    name : str
        The test set.
    rows : list of dict
        :func:`prediction_row` rows.
    """
    write_text(
        Path(folder) / predictions_file(name),
        "".join(json.dumps(r) + "\n" for r in rows),
    )


def is_complete(folder):
    """True once the run has written its test results.

    Arguments
    ---------
    folder : str or path-like
        The run folder.

    Returns
    -------
    bool
    """
    return (Path(folder) / TEST_RESULTS).is_file()


def read_json(path):
    """The content of a JSON file.

    Arguments
    ---------
    path : str or path-like
        The file.

    Returns
    -------
    object
    """
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


def read_test_results(folder):
    """The ``test_results.json`` of a run folder.

    Arguments
    ---------
    folder : str or path-like
        The run folder.

    Returns
    -------
    dict
    """
    return read_json(Path(folder) / TEST_RESULTS)


def read_predictions(folder):
    """The rows of a run folder's ``test_predictions.jsonl``.

    Arguments
    ---------
    folder : str or path-like
        The run folder (or the file itself).

    Returns
    -------
    list of dict
    """
    path = Path(folder)
    if path.is_dir():
        path = path / TEST_PREDICTIONS
    with open(path, encoding="utf-8") as fin:
        return [json.loads(line) for line in fin if line.strip()]


def read_train_log(folder):
    """Per-epoch train/valid statistics from a run's ``train_log.txt``.

    SpeechBrain writes this log but has no reader for it, hence this one.
    An epoch logged twice (a resumed run) keeps its last line.

    Arguments
    ---------
    folder : str or path-like
        The run folder (or the log itself).

    Returns
    -------
    list of dict
        ``{"epoch": 1, "train_loss": ..., "valid_loss": ..., "valid_UA":
        ...}`` in epoch order.

    Example
    -------
    >>> log = getfixture("tmp_path") / TRAIN_LOG
    >>> _ = log.write_text(
    ...     "epoch: 1, masked: none - train loss: 1.11 - valid loss: "
    ...     "6.49e-01, valid UA: 2.50e-01\\n"
    ...     "Epoch loaded: 1 - test loss: 9.80e-01, test WA: 2.86e-01\\n")
    >>> read_train_log(log)
    [{'epoch': 1, 'train_loss': 1.11, 'valid_loss': 0.649, 'valid_UA': 0.25}]
    """
    path = Path(folder)
    if path.is_dir():
        path = path / TRAIN_LOG
    epochs = {}
    with open(path, encoding="utf-8") as fin:
        for line in fin:
            match = _EPOCH_RE.match(line)
            if not match:
                continue
            entry = {"epoch": int(match[1])}
            for stage, name, value in _STAT_RE.findall(line):
                entry[f"{stage}_{name}"] = float(value)
            epochs[entry["epoch"]] = entry
    return [epochs[k] for k in sorted(epochs)]


def write_run_config(folder, settings):
    """Records the settings a run is trained with (``run_config.json``).

    Arguments
    ---------
    folder : str or path-like
        The run folder.
    settings : dict
        Plain settings (the recipe's resolved hyperparameters).
    """
    write_json(Path(folder) / RUN_CONFIG, {"settings": settings})


def read_run_config(folder):
    """The settings recorded in a run folder (None when absent).

    Arguments
    ---------
    folder : str or path-like
        The run folder.

    Returns
    -------
    dict or None
    """
    path = Path(folder) / RUN_CONFIG
    return read_json(path)["settings"] if path.is_file() else None


def settings_differences(saved, current):
    """The settings whose values differ, nested ones as dotted keys.

    A nested difference that repeats a top-level one (``model_config``
    holds references to top-level keys) is not listed twice.

    Arguments
    ---------
    saved, current : dict
        Settings.

    Returns
    -------
    list of str
        ``key: saved -> current`` for each difference, sorted.

    Example
    -------
    >>> settings_differences(
    ...     {"lr": 0.1, "a": 1, "model": {"lr": 0.1, "d": 4}},
    ...     {"lr": 0.2, "a": 1, "model": {"lr": 0.2, "d": 8}, "b": 2})
    ['b: (none) -> 2', 'lr: 0.1 -> 0.2', 'model.d: 4 -> 8']
    >>> settings_differences({"labels": ["a"], "m": {"labels": ["a"]}},
    ...                      {"labels": ["b"], "m": {"labels": ["b"]}})
    ["labels: ['a'] -> ['b']"]
    """
    missing = "(none)"
    old, new = _flatten(saved), _flatten(current)
    changed = {
        key: (old.get(key, missing), new.get(key, missing))
        for key in set(old) | set(new)
        if old.get(key, missing) != new.get(key, missing)
    }
    # a nested key repeating a top-level change is not listed twice (lists
    # compared through their JSON text: they are not hashable)
    top = {(k, json.dumps(v)) for k, v in changed.items() if "." not in k}
    return [
        f"{key}: {values[0]} -> {values[1]}"
        for key, values in sorted(changed.items())
        if "." not in key
        or (key.rsplit(".", 1)[1], json.dumps(values)) not in top
    ]


def _flatten(settings, prefix=""):
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_has_outputs(folder):
    """True when a run folder holds checkpoints or results.

    Arguments
    ---------
    folder : str or path-like
        The run folder.

    Returns
    -------
    bool
    """
    folder = Path(folder)
    saved = folder / SAVE_FOLDER
    return is_complete(folder) or (saved.is_dir() and any(saved.glob("CKPT+*")))


def stale_settings(folder, current):
    """How a run folder's recorded settings differ from the current ones.

    Arguments
    ---------
    folder : str or path-like
        The run folder.
    current : callable
        Returns the current settings; called only when the folder holds a
        run to compare with.

    Returns
    -------
    list of str
        The differences (:func:`settings_differences`); empty for a folder
        without a run or with the same settings. A run without recorded
        settings (an older version) differs.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> stale_settings(folder, lambda: {"lr": 0.1})
    []
    >>> write_run_config(folder, {"lr": 0.1})
    >>> stale_settings(folder, lambda: {"lr": 0.2})
    ['lr: 0.1 -> 0.2']
    """
    saved = read_run_config(folder)
    if saved is None:
        if not run_has_outputs(folder):
            return []
        return ["(no run_config.json: made by an older version)"]
    return settings_differences(saved, current())


def file_digest(path):
    """SHA-256 of a file's bytes (read in 1 MiB blocks).

    Arguments
    ---------
    path : str or path-like
        The file.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> file_digest(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fin:
        for block in iter(lambda: fin.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_digest(value):
    """SHA-256 of a JSON value's canonical text (keys sorted, no spaces),
    so that re-indenting the file does not change it.

    Arguments
    ---------
    value : object
        A JSON-serialisable value.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> json_digest({"b": 1, "a": [2]}) == json_digest({"a": [2], "b": 1})
    True
    >>> json_digest({"a": 1}) == json_digest({"a": 2})
    False
    """
    text = json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_digests(base, names, digests, recorded_in, hashed=True):
    """Checks files against recorded SHA-256 digests.

    Arguments
    ---------
    base : str or path-like
        The folder the names are relative to.
    names : iterable of str
        The files to check (POSIX paths inside ``base``).
    digests : dict
        Name -> SHA-256.
    recorded_in : str
        Where the digests are recorded (for the message).
    hashed : bool
        Compare the bytes (False: only require a digest for each file).

    Returns
    -------
    str or None
        What is wrong with the first bad file, naming it, or None.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "a.txt").write_text("a")
    >>> digests = {"a.txt": file_digest(folder / "a.txt")}
    >>> check_digests(folder, ["a.txt"], digests, "info.json") is None
    True
    >>> print(check_digests(folder, ["b.txt"], digests, "info.json"))
    ... # doctest: +ELLIPSIS
    /.../b.txt: not covered by the digests of info.json
    """
    for name in names:
        path = Path(base) / name
        if name not in digests:
            return f"{path}: not covered by the digests of {recorded_in}"
        if hashed and (
            not path.is_file() or file_digest(path) != digests[name]
        ):
            return (
                f"{path}: missing or changed since the export (SHA-256 "
                f"differs from {recorded_in})"
            )
    return None


def sweep_run_name(protocol, fold, seed):
    """Where one fold x seed lives inside a sweep folder.

    Arguments
    ---------
    protocol : str
        ``"speaker"`` or ``"session"``.
    fold, seed : int
        Fold and seed.

    Returns
    -------
    str

    Example
    -------
    >>> sweep_run_name("speaker", 2, 1)
    'speaker_fold2/seed1'
    """
    return f"{protocol}_fold{fold}/seed{seed}"


def find_sweep_runs(folder, protocol):
    """The run folders of one protocol in a sweep folder.

    Arguments
    ---------
    folder : str or path-like
        The sweep folder.
    protocol : str
        ``"speaker"`` or ``"session"``.

    Returns
    -------
    complete : list of dict
        ``{"fold", "seed", "path"}`` of the runs with test results, sorted
        by fold then seed.
    incomplete : list of str
        Names (:func:`sweep_run_name`) of the runs without.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> (tmp / "speaker_fold2" / "seed1").mkdir(parents=True)
    >>> (tmp / "speaker_fold2" / "seed1" / TEST_RESULTS).write_text("{}")
    2
    >>> (tmp / "speaker_fold10" / "seed1").mkdir(parents=True)
    >>> complete, incomplete = find_sweep_runs(tmp, "speaker")
    >>> [(r["fold"], r["seed"]) for r in complete], incomplete
    ([(2, 1)], ['speaker_fold10/seed1'])
    """
    runs = []
    for seed_dir in Path(folder).glob(f"{protocol}_fold*/seed*"):
        fold = re.fullmatch(rf"{protocol}_fold(\d+)", seed_dir.parent.name)
        seed = re.fullmatch(r"seed(\d+)", seed_dir.name)
        if fold and seed and seed_dir.is_dir():
            runs.append(
                {"fold": int(fold[1]), "seed": int(seed[1]), "path": seed_dir}
            )
    runs.sort(key=lambda r: (r["fold"], r["seed"]))
    complete = [run for run in runs if is_complete(run["path"])]
    incomplete = [
        sweep_run_name(protocol, run["fold"], run["seed"])
        for run in runs
        if not is_complete(run["path"])
    ]
    return complete, incomplete
