"""Packages a trained run (or a whole sweep) into an inference folder.

``mtmm export --run <run> --out <model>`` reads a run folder written by a
recipe and writes::

    <model>/
        README.md             the model card (:mod:`.model_card`)
        hyperparams.yaml      presets/inference.yaml with the run's
                              model_config (the one description of the model)
        system.ckpt           every trained weight: encoders, layer sums,
                              refinement, fusion, heads
        labels.txt            the class order, one label per line
        custom_interface.py   the recognizer for SpeechBrain's
                              foreign_class, loadable without this
                              package (:mod:`.interface`)
        export_info.json      run, checkpoint, validation scores, and the
                              SHA-256 of every other file
        encoders/audio/       config + feature extractor of a local HF
        encoders/text/        config + tokenizer of a local HF text encoder
        onnx/                 with --onnx: the ONNX graphs (--int8: also
                              quantized), see :mod:`.onnx_export`

The checkpoint is the run's best on validation (largest ``score`` in
``save/CKPT+*/CKPT.yaml``, the one the recipe tested). The model is
described by the ``model_config`` mapping of the run's ``hyperparams.yaml``
(which SpeechBrain wrote with every reference and override resolved): the
export copies that mapping, and loading builds the same
:class:`~speechbrain_mtmm.system.MultimodalEmotionSystem` from it, so the
exported model cannot lack a module the run trained (a learned layer sum,
say): the weights are loaded strictly, and a mismatch stops the export.
Encoders given as local folders are copied without their weight files
(the fine-tuned weights are in ``system.ckpt``; a run's checkpoints leave
out frozen encoders, which the export then loads from their sources and
checks against the fingerprints the run recorded), so the export works
after the training folders are deleted; hub ids stay hub ids (their config and
tokenizer are fetched when loading). ``hyperparams.yaml`` names no
folder: the export loads wherever its files were fetched to (the folder, a
``savedir``, a HF hub cache; see :mod:`~speechbrain_mtmm.inference.loading`).
The export is written to a hidden sibling folder of its own
(``.<out>.export-<pid>-<random>``), loaded once as a check, then renamed
into place; the digests are recorded last, after the card and the ONNX
graphs, and ``export_info.json`` carries a digest of itself. One export at
a time writes a target: a second is refused, naming the first (a lock file
beside the target, ``.<out>.export.lock``, removed at the end).

``--overwrite`` replaces only what ``mtmm export`` wrote: it refuses a
target that is, holds or lies inside a run, a sweep, a corpus (raw or
prepared) or the current directory, or that holds a file no export wrote
(named), and the earlier export is moved aside and deleted only once the
new one is in place.

``mtmm export --sweep <sweep> --out <models>`` exports every complete run
of a cross-validation sweep into ``<models>/<protocol>_fold<k>/seed<s>/``
and writes a card with the cross-validation table at the top.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import copy
import datetime
import json
import os
import re
import secrets
import shutil
from importlib import resources
from pathlib import Path

import ruamel.yaml
import torch
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_mtmm.atomic import write_json, write_text
from speechbrain_mtmm.data import corpus as corpus_module
from speechbrain_mtmm.data import csv_corpus, folds, iemocap, msp_podcast
from speechbrain_mtmm.encoders import LIGHT_SOURCES, MODALITIES
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.locks import FolderBusyError, FolderLock
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import (
    CV_RESULTS_JSON,
    DIMENSIONS,
    EXPORT_INFO,
    HYPERPARAMS,
    RUN_CONFIG,
    RUN_LOCK,
    SAVE_FOLDER,
    SELF_DIGEST,
    SWEEP_LOCK,
    SWEEP_PLAN,
    TASKS,
    TEST_RESULTS,
    TRAIN_LOG,
    file_digest,
    find_sweep_runs,
    json_digest,
    read_json,
    read_test_results,
    sweep_run_name,
)
from speechbrain_mtmm.sharing.interface import write_interface
from speechbrain_mtmm.sharing.model_card import (
    corpus_facts,
    run_card,
    sweep_card,
)
from speechbrain_mtmm.sharing.onnx_export import export_onnx
from speechbrain_mtmm.system import (
    ModelConfigError,
    MultimodalEmotionSystem,
    check_config,
)

TEMPLATE = resources.files("speechbrain_mtmm") / "presets" / "inference.yaml"
CHECKPOINT = "system"  # <name>.ckpt in the run's checkpoints and the export
LABELS_FILE = "labels.txt"
CARD = "README.md"
# Files of a HF model folder that are not copied: the weights (the
# exported checkpoint holds them), hidden files and folders
WEIGHT_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.index.json",
    ".*",
)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: Files that make a folder a run (a save/ folder does too)
RUN_MARKERS = (RUN_LOCK, RUN_CONFIG, TRAIN_LOG, TEST_RESULTS)
SWEEP_MARKERS = (SWEEP_LOCK, SWEEP_PLAN, CV_RESULTS_JSON)
#: Files that make a folder a prepared corpus (mtmm prepare's outputs)
CORPUS_MARKERS = (
    corpus_module.CORPUS_INFO,
    csv_corpus.MANIFEST_NAME,
    folds.FOLDS_INDEX,
    iemocap.MANIFEST_NAME,
    iemocap.OPTIONS_NAME,
    msp_podcast.MANIFEST_NAME,
)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".sph")


class ExportError(ValueError):
    """A run folder that cannot be exported; the message names the file."""


def export_model(
    run_folder,
    out_folder,
    asr_source=None,
    overwrite=False,
    onnx=False,
    int8=False,
):
    """Exports the best checkpoint of a run as an inference folder.

    Arguments
    ---------
    run_folder : str or path-like
        The ``output_folder`` of a recipe run.
    out_folder : str or path-like
        Where the model folder goes (created; see the module docstring).
    asr_source : str, optional
        ASR model used when a transcript is missing (a transformers hub id
        or folder, e.g. "openai/whisper-small"; kept as given). None: such
        files run audio-only.
    overwrite : bool
        Replace ``out_folder`` if it exists and is not empty: only a
        folder that ``mtmm export`` wrote (see :func:`replace_problem`).
    onnx : bool
        Also write the ONNX graphs, checked against PyTorch.
    int8 : bool
        Also write int8 ONNX graphs (implies ``onnx``).

    Returns
    -------
    pathlib.Path
        The model folder.

    Raises
    ------
    ExportError
        With the file and the problem (no checkpoint, missing encoder
        folder, weights that do not fit the model, ...).

    Example
    -------
    >>> run = "results/paper/speaker_fold1/seed1"
    >>> export_model(run, "model")  # doctest: +SKIP
    PosixPath('model')
    """
    run_folder, out = Path(run_folder), Path(out_folder)
    _check_target(out, run_folder, overwrite)
    read_model_config(run_folder)  # fails early, before any folder
    best_checkpoint(run_folder)

    def write(staging):
        """Writes the export into the staging folder."""
        _export_run(run_folder, staging, asr_source, onnx, int8)

    return _write_atomically(out, run_folder, overwrite, write)


def _export_run(run_folder, folder, asr_source, onnx, int8):
    """Writes the export of one run into an empty ``folder``."""
    config = read_model_config(run_folder)
    checkpoint = best_checkpoint(run_folder)
    trained = copy.deepcopy(config)  # the sources as trained
    _write_export(run_folder, config, checkpoint, folder, asr_source)
    record_digests(folder)
    recognizer = _check_loads(folder)
    if onnx or int8:
        export_onnx(folder, recognizer.system, int8)
    info = read_json(folder / EXPORT_INFO)
    card = run_card(run_folder, trained, info, onnx=onnx or int8)
    write_text(folder / CARD, card)
    record_digests(folder)  # last: every file, card and graphs too


def export_sweep(
    sweep_folder,
    out_folder,
    protocol="speaker",
    asr_source=None,
    overwrite=False,
    onnx=False,
    int8=False,
):
    """Exports every complete run of a sweep, with a cross-validation card.

    Arguments
    ---------
    sweep_folder : str or path-like
        The ``--output`` of ``mtmm cv`` (with ``cv_results.json``).
    out_folder : str or path-like
        Where the models go: one subfolder per run, named as in the sweep.
    protocol : str
        The sweep's protocol.
    asr_source, overwrite, onnx, int8
        As for :func:`export_model`.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    ExportError
        No results, or a run that cannot be exported.
    """
    sweep, out = Path(sweep_folder), Path(out_folder)
    _check_target(out, sweep, overwrite)
    results_path = sweep / CV_RESULTS_JSON
    if not results_path.is_file():
        raise ExportError(
            f"{results_path}: missing; run mtmm cv on {sweep} first"
        )
    results = read_json(results_path)
    runs, _ = find_sweep_runs(sweep, protocol)
    if not runs:
        raise ExportError(f"{sweep}: no complete {protocol} run to export")

    def write(staging):
        """Writes the export into the staging folder."""
        names = []
        for run in runs:
            name = sweep_run_name(protocol, run["fold"], run["seed"])
            (staging / name).mkdir(parents=True)
            _export_run(run["path"], staging / name, asr_source, onnx, int8)
            names.append(name)
        config = read_model_config(runs[0]["path"])
        facts = corpus_facts(read_test_results(runs[0]["path"]))
        card = sweep_card(
            results, names, config, onnx=onnx or int8, facts=facts
        )
        write_text(staging / CARD, card)

    return _write_atomically(out, sweep, overwrite, write)


def _check_target(out, source, overwrite):
    """Refuses an output folder that would destroy the source or any data
    ``mtmm export`` did not write (see the module docstring)."""
    target, source = out.resolve(), source.resolve()
    if target == source or target in source.parents:
        raise ExportError(
            f"{out}: is the run folder {source} or holds it; exporting "
            "there would delete the run; choose another --out"
        )
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise ExportError(
            f"{out}: is the current directory or one of its parents; "
            "choose another --out"
        )
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return  # nothing to replace
    if not overwrite:
        raise ExportError(f"{out}: exists and is not empty (use --overwrite)")
    problem = replace_problem(out)
    if problem:
        raise ExportError(problem)


def replace_problem(out):
    """Why ``--overwrite`` must not replace a folder, or None.

    It may replace only what ``mtmm export`` wrote: not the current
    directory or its parents, nothing that is, holds or lies inside a run,
    a sweep or a corpus, and no folder holding a file that no export
    wrote.

    Arguments
    ---------
    out : pathlib.Path
        The existing output folder.

    Returns
    -------
    str or None
        A one-line message naming the folder or file, and what to do.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "model"
    >>> (folder / "save").mkdir(parents=True)
    >>> print(replace_problem(folder))  # doctest: +ELLIPSIS
    /.../model: is a run folder (it has save/); --overwrite never deletes \
a run, a sweep or a corpus: choose another --out
    """
    target = out.resolve()
    todo = "choose another --out"
    if not out.is_dir():
        return f"{out}: not a folder; {todo}"
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents or target == Path.home():
        return (
            f"{out}: is the current directory, one of its parents or your "
            f"home folder; --overwrite would delete it: {todo}"
        )
    for folder in target.parents:
        what = _kind_of(folder, audio=False)
        if what:
            return (
                f"{out}: lies inside the {what} {folder}; --overwrite never "
                f"deletes inside a run, a sweep or a corpus: {todo}"
            )
    for folder, names in _walk(target):
        what = _kind_of(folder)
        if what == "run folder" and folder == target:
            why = next(n for n in (SAVE_FOLDER, *RUN_MARKERS) if n in names)
            return (
                f"{out}: is a run folder (it has {why}"
                f"{'/' if why == SAVE_FOLDER else ''}); --overwrite never "
                f"deletes a run, a sweep or a corpus: {todo}"
            )
        if what:
            return (
                f"{out}: holds the {what} {folder}; --overwrite never "
                f"deletes a run, a sweep or a corpus: {todo}"
            )
    stranger = _not_exported(target)
    if stranger is not None:
        return (
            f"{out / stranger.relative_to(target)}: not written by mtmm "
            "export; --overwrite replaces only what an export wrote: move "
            f"it away or {todo}"
        )
    return None


def _walk(folder):
    """(folder, names in it) for a folder and every folder below it,
    top-down, symlinks not followed."""
    for root, dirs, files in os.walk(folder):
        yield Path(root), set(dirs) | set(files)


def _kind_of(folder, audio=True):
    """ "run folder", "sweep", "corpus" or None, from the files in it (with
    ``audio``, an audio file makes a corpus)."""
    if (folder / SAVE_FOLDER).is_dir() or any(
        (folder / name).exists() for name in RUN_MARKERS
    ):
        return "run folder"
    if any((folder / name).exists() for name in SWEEP_MARKERS):
        return "sweep"
    if any((folder / name).exists() for name in CORPUS_MARKERS):
        return "corpus"
    if audio and any(
        p.suffix.lower() in AUDIO_SUFFIXES
        for p in folder.iterdir()
        if p.is_file()
    ):
        return "corpus"  # audio files: a raw corpus
    return None


def _not_exported(folder):
    """The first file under ``folder`` that no export wrote, or None: a
    model folder's files are those its ``export_info.json`` lists; a sweep
    export holds model folders and its card."""
    info = folder / EXPORT_INFO
    if info.is_file():
        try:
            listed = set(read_json(info).get("sha256", {}))
        except (ValueError, AttributeError):
            return info
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and path != info and name not in listed:
                return path
            if path.is_symlink():
                return path
        return None
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.is_symlink():
            found = _not_exported(path)
            if found is not None:
                return found
        elif path.name != CARD:
            return path
    return None


def target_lock(out):
    """The lock that one export at a time holds on its target.

    Arguments
    ---------
    out : pathlib.Path
        The output folder.

    Returns
    -------
    speechbrain_mtmm.locks.FolderLock
        On ``.<name>.export.lock`` beside it, removed on release.

    Example
    -------
    >>> out = getfixture("tmp_path") / "model"
    >>> with target_lock(out):
    ...     target_lock(out).acquire()
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.locks.FolderBusyError: ...
    >>> sorted(p.name for p in out.parent.iterdir())
    []
    """
    out = Path(out)
    return FolderLock(
        out.parent, f".{out.name}.export.lock", "export target", remove=True
    )


def _write_atomically(out, source, overwrite, write):
    """``write(staging)`` into a hidden sibling of this command's own,
    renamed into place under the target's lock."""
    target = Path(os.path.abspath(out))  # "model/", "a/..": a name
    lock = target_lock(target)
    try:
        lock.acquire()
    except FolderBusyError as error:
        raise ExportError(
            f"{out}: another mtmm export is writing it ({error.holder}); "
            "wait for it to end, then export again"
        ) from None
    try:
        _check_target(out, source, overwrite)  # again, now that it is ours
        name, parent = target.name, target.parent
        for stale in parent.glob(f".{name}.export-*"):
            shutil.rmtree(stale, ignore_errors=True)  # of a killed export
        shutil.rmtree(parent / f".{name}.exporting", True)  # before 0.2.1
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = parent / f".{name}.export-{tag}"
        staging.mkdir()
        try:
            write(staging)
            _replace(staging, target, tag)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        lock.release()
    return out


def _replace(staging, out, tag):
    """Renames ``staging`` to ``out``; an earlier ``out`` is moved aside
    first and deleted only once the new one is in place."""
    if not out.exists():
        os.replace(staging, out)
        return
    aside = out.parent / f".{out.name}.export-{tag}-replaced"
    os.replace(out, aside)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(aside, out)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def read_model_config(run_folder):
    """The run's ``model_config``, read from its ``hyperparams.yaml``
    without building anything.

    Arguments
    ---------
    run_folder : pathlib.Path
        The run's output folder.

    Returns
    -------
    dict
        The model configuration (plain values).
    """
    path = Path(run_folder) / HYPERPARAMS
    if not path.is_file():
        raise ExportError(
            f"{path}: missing; give the output folder of a recipe run"
        )
    tree = read_plain_yaml(path, resolve=False)
    if "model_config" not in tree:
        raise ExportError(
            f"{path}: no model_config; was the run made with a recipe "
            "older than speechbrain-mtmm 0.2?"
        )
    config = tree["model_config"]
    if isinstance(config, dict) and "loss_weights" not in config:
        # runs from before the model described its loss weights
        keys = ("w_ce", *(f"w_{d}" for d in DIMENSIONS))
        weights = {
            task: tree[key]
            for task, key in zip(TASKS, keys)
            if isinstance(tree.get(key), (int, float))
        }
        config = {**config, "loss_weights": weights or None}
    try:
        return check_config(config)
    except (ModelConfigError, TypeError) as error:
        raise ExportError(f"{path}: {error}") from None


def best_checkpoint(run_folder):
    """The complete checkpoint with the highest validation ``score``.

    Arguments
    ---------
    run_folder : pathlib.Path
        The run's output folder (checkpoints in ``save/``).

    Returns
    -------
    speechbrain.utils.checkpoints.Checkpoint
    """
    save = Path(run_folder) / SAVE_FOLDER
    if not save.is_dir():
        raise ExportError(f"{save}: missing; the run saved no checkpoint")

    def complete(ckpt):
        """Whether a checkpoint holds the system's weights."""
        return (ckpt.path / f"{CHECKPOINT}.ckpt").exists()

    found = Checkpointer(save).find_checkpoint(
        max_key="score", ckpt_predicate=complete
    )
    if found is None:
        raise ExportError(
            f"{save}: no checkpoint with a validation score and "
            f"{CHECKPOINT}.ckpt"
        )
    return found


def inference_hparams(config, asr_source=None):
    """The template with a model configuration filled in.

    Arguments
    ---------
    config : dict
        The exported model's configuration.
    asr_source : str, optional
        ASR model for missing transcripts.

    Returns
    -------
    ruamel.yaml.comments.CommentedMap
        The exported hyperparameters, template comments kept.
    """
    with TEMPLATE.open(encoding="utf-8") as fin:
        tree = ruamel.yaml.YAML().load(fin)
    tree["model_config"] = _block(config)
    if asr_source is not None:
        tree["asr_source"] = str(asr_source)
    return tree


def _write_export(run_folder, config, checkpoint, out, asr_source):
    _write_weights(copy.deepcopy(config), checkpoint, out)
    for modality in MODALITIES:
        section = config[modality]
        section["source"] = _export_encoder(section["source"], modality, out)
    tree = inference_hparams(config, asr_source)
    with open(out / HYPERPARAMS, "w", encoding="utf-8") as fout:
        _yaml_writer().dump(tree, fout)
    write_text(out / LABELS_FILE, "\n".join(config["labels"]) + "\n")
    write_interface(out)
    write_json(
        out / EXPORT_INFO,
        {
            "run_folder": str(Path(run_folder).resolve()),
            "checkpoint": checkpoint.path.name,
            "validation": json.loads(json.dumps(checkpoint.meta, default=str)),
            "exported": datetime.datetime.now().isoformat(timespec="seconds"),
            "sha256": {},  # record_digests
        },
    )


def record_digests(folder):
    """Records the SHA-256 of every file of a model folder (but
    ``export_info.json`` itself) in its ``export_info.json``, and the
    SHA-256 of ``export_info.json``'s own content (``self_sha256``, over
    its canonical JSON, :func:`~speechbrain_mtmm.run_folder.json_digest`).

    Loading checks the files it reads against them
    (:func:`~speechbrain_mtmm.inference.loading.verify_digests`). Call it
    again after changing a file on purpose: it signs the folder as it is.

    Arguments
    ---------
    folder : str or path-like
        The model folder (with ``export_info.json``).

    Returns
    -------
    dict
        Path inside the folder (``/``-separated) -> hex digest.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "export_info.json").write_text("{}")
    >>> (folder / "encoders").mkdir()
    >>> _ = (folder / "encoders" / "config.json").write_text("{}")
    >>> list(record_digests(folder))
    ['encoders/config.json']
    """
    folder = Path(folder)
    info = read_json(folder / EXPORT_INFO)
    info.pop(SELF_DIGEST, None)
    info["sha256"] = {
        path.relative_to(folder).as_posix(): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path != folder / EXPORT_INFO
    }
    info[SELF_DIGEST] = json_digest(info)
    write_json(folder / EXPORT_INFO, info)
    return info["sha256"]


def _write_weights(config, checkpoint, out):
    """``system.ckpt`` with every weight. A checkpoint of a run with frozen
    encoders holds only what training changed: the frozen encoders come
    from their sources, checked against the fingerprints it recorded."""
    name = f"{CHECKPOINT}.ckpt"
    saved = checkpoint.path / name
    if not (checkpoint.path / f"{CHECKPOINT}.frozen.json").is_file():
        shutil.copy2(saved, out / name)
        return
    try:
        system = MultimodalEmotionSystem(config, freeze="frozen")
        system.load_trained(saved)
    except (OSError, RuntimeError) as error:
        raise ExportError(
            f"{saved}: its frozen encoders cannot be restored from their "
            f"sources ({error})"
        ) from None
    torch.save(system.state_dict(), out / name)


def _export_encoder(source, modality, out):
    """The export's source of one encoder (copying a local folder)."""
    source = str(source)
    if source == LIGHT_SOURCES[modality]:
        return source
    folder = Path(source).expanduser()
    if folder.is_dir():
        target = out / "encoders" / modality
        shutil.copytree(
            folder, target, ignore=shutil.ignore_patterns(*WEIGHT_PATTERNS)
        )
        if not (target / "config.json").is_file():
            raise ExportError(f"{folder}: no config.json (a HF model folder?)")
        return f"encoders/{modality}"  # resolved against the model folder
    if HUB_ID.match(source):
        return source
    raise ExportError(
        f"{source}: the {modality} encoder of the run is neither a folder "
        "(moved or deleted?) nor a hub id; export before deleting it"
    )


def _check_loads(folder):
    """Builds the exported model: the weights must fit exactly."""
    try:
        return MultimodalEmotionRecognizer.from_hparams(
            folder, run_opts={"device": "cpu"}
        )
    except RuntimeError as error:
        raise ExportError(str(error)) from None


def _yaml_writer():
    """Round-trip YAML writer in the template's layout (4-space
    indentation, ``null`` spelled out, ``True``/``False``)."""
    writer = ruamel.yaml.YAML()
    writer.indent(mapping=4, sequence=4, offset=2)
    writer.representer.add_representer(
        type(None),
        lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"),
    )
    writer.representer.add_representer(  # True/False, as in our YAML files
        bool,
        lambda rep, value: rep.represent_scalar(
            "tag:yaml.org,2002:bool", str(value)
        ),
    )
    return writer


def _block(value):
    """Plain values as YAML nodes: mappings in block, lists in flow style."""
    if isinstance(value, dict):
        return CommentedMap((k, _block(v)) for k, v in value.items())
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value
