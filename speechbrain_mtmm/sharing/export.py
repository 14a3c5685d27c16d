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
The export is written to a hidden sibling folder, loaded once as a check,
then renamed into place; the digests are recorded last, after the card and
the ONNX graphs.

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
import shutil
from importlib import resources
from pathlib import Path

import ruamel.yaml
import torch
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_mtmm.atomic import write_json, write_text
from speechbrain_mtmm.encoders import LIGHT_SOURCES, MODALITIES
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import (
    CV_RESULTS_JSON,
    DIMENSIONS,
    EXPORT_INFO,
    HYPERPARAMS,
    SAVE_FOLDER,
    TASKS,
    file_digest,
    find_sweep_runs,
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
        Replace ``out_folder`` if it exists and is not empty.
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
    config = read_model_config(run_folder)
    checkpoint = best_checkpoint(run_folder)

    def write(staging):
        """Writes the export into the staging folder."""
        trained = copy.deepcopy(config)  # the sources as trained
        _write_export(run_folder, config, checkpoint, staging, asr_source)
        record_digests(staging)
        recognizer = _check_loads(staging)
        if onnx or int8:
            export_onnx(staging, recognizer.system, int8)
        info = read_json(staging / EXPORT_INFO)
        card = run_card(run_folder, trained, info, onnx=onnx or int8)
        write_text(staging / CARD, card)
        record_digests(staging)  # last: every file, card and graphs too

    return _write_atomically(out, write)


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
            export_model(
                run["path"], staging / name, asr_source, False, onnx, int8
            )
            names.append(name)
        config = read_model_config(runs[0]["path"])
        facts = corpus_facts(read_test_results(runs[0]["path"]))
        card = sweep_card(
            results, names, config, onnx=onnx or int8, facts=facts
        )
        write_text(staging / CARD, card)

    return _write_atomically(out, write)


def _check_target(out, source, overwrite):
    """Refuses an output folder that would destroy the source or others'
    files."""
    if out.resolve() == source.resolve() or out.resolve() in (
        source.resolve().parents
    ):
        raise ExportError(
            f"{out}: is the run folder {source} or holds it; exporting "
            "there would delete the run; choose another --out"
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: exists and is not empty (use --overwrite)")


def _write_atomically(out, write):
    """``write(staging)`` into a hidden sibling, renamed into place."""
    staging = out.parent / f".{out.name}.exporting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return out


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
    ``export_info.json`` itself) in its ``export_info.json``.

    Loading checks the files it reads against them
    (:func:`~speechbrain_mtmm.inference.loading.verify_digests`). Call it
    again after changing a file on purpose.

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
    info["sha256"] = {
        path.relative_to(folder).as_posix(): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path != folder / EXPORT_INFO
    }
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
