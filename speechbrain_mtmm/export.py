"""Packages a trained run into a self-contained inference folder.

``python -m speechbrain_mtmm.inference export --run <run> --out <model>``
(or ``mtmm-export``) reads the run folder written by
``recipes/IEMOCAP/train.py`` and writes::

    <model>/
        hyperparams.yaml      inference hyperparameters (hparams/inference.yaml
                              filled in with the run's values)
        model.ckpt            refinement + fusion + heads
        audio_encoder.ckpt    fine-tuned audio encoder (all its weights)
        text_encoder.ckpt     fine-tuned text encoder (all its weights)
        labels.txt            the class order, one label per line
        export_info.json      run, checkpoint and its validation scores
        encoders/audio/       config + feature extractor of a local HF
        encoders/text/        config + tokenizer of a local HF text encoder

The checkpoint is the run's best on validation (largest ``score`` in
``save/CKPT+*/CKPT.yaml``, the one the recipe tested). The architecture
(d_model, heads, fusion type, refinement, encoder layer, labels,
dimensions, ...) is read from the run's ``hyperparams.yaml``, which
SpeechBrain wrote with every reference and command-line override resolved.
Encoders given as local folders are copied without their weight files
(the fine-tuned weights are in ``<modality>_encoder.ckpt``), so the export
works after the training folders are deleted; hub ids stay hub ids (their
config and tokenizer are fetched when loading). The export is written to a
hidden sibling folder, checked (every builder argument equals the run's;
the model loads with strictly matching weights), then renamed into place.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import argparse
import datetime
import json
import os
import re
import shutil
import sys
from pathlib import Path

import ruamel.yaml
from hyperpyyaml import resolve_references
from ruamel.yaml.comments import CommentedSeq, TaggedScalar
from speechbrain.utils.checkpoints import Checkpointer

TEMPLATE = Path(__file__).resolve().parents[1] / "hparams" / "inference.yaml"
CHECKPOINT_FILES = ("model", "audio_encoder", "text_encoder")
LIGHT_SOURCES = {"audio": "fbank", "text": "hashing"}
# Files of a HF model folder that are not copied: the weights (the
# exported checkpoints hold them), hidden files and folders
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
# template key <- key path in the run's hyperparams.yaml
FROM_RUN = {
    "labels": ("labels",),
    "n_dims": ("n_dims",),
    "sample_rate": ("sample_rate",),
    "max_audio_seconds": ("max_audio_seconds",),
    "modalities": ("modalities",),
    "audio_layer": ("audio", "layer"),
    "audio_light_size": ("audio", "light_size"),
    "text_layer": ("text", "layer"),
    "text_max_length": ("text", "max_length"),
    "text_light_size": ("text", "light_size"),
    "d_model": ("d_model",),
    "n_heads": ("n_heads",),
    "refinement": ("refinement",),
    "refinement_layers": ("refinement_layers",),
    "refinement_ffn": ("refinement_ffn",),
    "fusion_type": ("fusion_type",),
    "bridge_tokens": ("bridge_tokens",),
    "fusion_layers": ("fusion_layers",),
    "dropout": ("dropout",),
}
# exported node <- run node whose builder arguments must be the same
ARCHITECTURE = {
    "audio_encoder": ("audio", "encoder"),
    "text_encoder": ("text", "encoder"),
    "audio_refinement": ("audio_refinement",),
    "text_refinement": ("text_refinement",),
    "fusion": ("fusion",),
    "heads": ("heads",),
    "model": ("model",),
}
# training-only encoder arguments (the source is checked when copied)
NOT_COMPARED = ("source", "freeze", "save_path")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ExportError(ValueError):
    """A run folder that cannot be exported; the message names the file."""


def export_model(run_folder, out_folder, asr_source=None, overwrite=False):
    """Exports the best checkpoint of a run as an inference folder.

    Arguments
    ---------
    run_folder : str or path-like
        The ``output_folder`` of a train.py run.
    out_folder : str or path-like
        Where the model folder goes (created; see the module docstring).
    asr_source : str, optional
        ASR model used when a transcript is missing (a transformers hub id
        or folder, e.g. "openai/whisper-small"; kept as given). None: such
        files run audio-only.
    overwrite : bool
        Replace ``out_folder`` if it exists and is not empty.

    Returns
    -------
    pathlib.Path
        The model folder.

    Raises
    ------
    ExportError
        With the file and the problem (no checkpoint, missing encoder
        folder, an architecture argument the template lacks, ...).

    Example
    -------
    >>> run = "results/paper/speaker_fold1/seed1"
    >>> export_model(run, "model")  # doctest: +SKIP
    PosixPath('model')
    """
    run_folder, out = Path(run_folder), Path(out_folder)
    run_tree = read_run_hparams(run_folder)
    checkpoint = best_checkpoint(run_folder)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: exists and is not empty (use --overwrite)")
    staging = out.parent / f".{out.name}.exporting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _write_export(run_folder, run_tree, checkpoint, staging, asr_source)
        check_architecture(run_tree, staging)
        _check_loads(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return out


def read_run_hparams(run_folder):
    """The run's ``hyperparams.yaml`` as a tree; nothing is built.

    Arguments
    ---------
    run_folder : pathlib.Path
        The run's output folder.

    Returns
    -------
    ruamel.yaml.comments.CommentedMap
        Tags (``!new:``, ``!apply:``) are kept, not executed.
    """
    path = Path(run_folder) / "hyperparams.yaml"
    if not path.is_file():
        raise ExportError(
            f"{path}: missing; give the output folder of a train.py run"
        )
    with open(path, encoding="utf-8") as fin:
        tree = ruamel.yaml.YAML().load(fin)
    for key_path in [*FROM_RUN.values(), *ARCHITECTURE.values()]:
        _get(tree, key_path, path)
    return tree


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
    save = Path(run_folder) / "save"
    if not save.is_dir():
        raise ExportError(f"{save}: missing; the run saved no checkpoint")

    def complete(ckpt):
        return all((ckpt.path / f"{n}.ckpt").exists() for n in CHECKPOINT_FILES)

    found = Checkpointer(save).find_checkpoint(
        max_key="score", ckpt_predicate=complete
    )
    if found is None:
        raise ExportError(
            f"{save}: no checkpoint with a validation score and the files "
            f"{', '.join(n + '.ckpt' for n in CHECKPOINT_FILES)}"
        )
    return found


def inference_hparams(run_tree, sources, asr_source=None):
    """The template filled in with the run's values.

    Arguments
    ---------
    run_tree : ruamel.yaml.comments.CommentedMap
        The run's hyperparameters (:func:`read_run_hparams`).
    sources : dict
        ``audio_source`` and ``text_source`` values for the export.
    asr_source : str, optional
        ASR model for missing transcripts.

    Returns
    -------
    ruamel.yaml.comments.CommentedMap
        The exported hyperparameters, template comments kept.
    """
    with open(TEMPLATE, encoding="utf-8") as fin:
        tree = ruamel.yaml.YAML().load(fin)
    for key, key_path in FROM_RUN.items():
        tree[key] = _plain(_get(run_tree, key_path))
    tree.update(sources)
    if asr_source is not None:
        tree["asr_source"] = str(asr_source)
    return tree


def check_architecture(run_tree, folder):
    """Every builder argument of the export equals the run's.

    The comparison covers the plain values (numbers, strings, lists) of
    the nodes in ``ARCHITECTURE``; objects passed between builders are
    compared through their own arguments.

    Arguments
    ---------
    run_tree : ruamel.yaml.comments.CommentedMap
        The run's hyperparameters.
    folder : pathlib.Path
        The export, holding ``hyperparams.yaml``.
    """
    path = Path(folder) / "hyperparams.yaml"
    with open(path, encoding="utf-8") as fin:
        resolved = resolve_references(fin, {"model_folder": str(folder)})
    exported = ruamel.yaml.YAML().load(resolved)
    for key, run_path in ARCHITECTURE.items():
        mine = _plain_args(exported[key])
        for name, value in _plain_args(_get(run_tree, run_path)).items():
            if key.endswith("_encoder") and name in NOT_COMPARED:
                continue
            if name not in mine or mine[name] != value:
                raise ExportError(
                    f"{path}: {key} has {name}={mine.get(name, '(none)')} "
                    f"but the run's {'.'.join(run_path)} has {name}={value}; "
                    f"add it to {TEMPLATE} (and to FROM_RUN in {__file__})"
                )


def _write_export(run_folder, run_tree, checkpoint, out, asr_source):
    sources = {
        f"{modality}_source": _export_encoder(
            str(run_tree[modality]["source"]), modality, out
        )
        for modality in ("audio", "text")
    }
    tree = inference_hparams(run_tree, sources, asr_source)
    with open(out / "hyperparams.yaml", "w", encoding="utf-8") as fout:
        _yaml_writer().dump(tree, fout)
    for name in CHECKPOINT_FILES:
        shutil.copy2(checkpoint.path / f"{name}.ckpt", out / f"{name}.ckpt")
    labels = _plain(run_tree["labels"])
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    info = {
        "run_folder": str(Path(run_folder).resolve()),
        "checkpoint": checkpoint.path.name,
        "validation": dict(checkpoint.meta),
        "exported": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    with open(out / "export_info.json", "w", encoding="utf-8") as fout:
        json.dump(info, fout, indent=2, default=str)


def _export_encoder(source, modality, out):
    """The export's source of one encoder (copying a local folder)."""
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
        return TaggedScalar(f"<model_folder>/encoders/{modality}", tag="!ref")
    if HUB_ID.match(source):
        return source
    raise ExportError(
        f"{source}: the {modality} encoder of the run is neither a folder "
        "(moved or deleted?) nor a hub id; export before deleting it"
    )


def _check_loads(folder):
    """Builds the exported model: the weights must fit exactly."""
    from speechbrain_mtmm.inference import MultimodalEmotionRecognizer

    MultimodalEmotionRecognizer.from_hparams(folder, run_opts={"device": "cpu"})


def _yaml_writer():
    """Round-trip YAML writer in the template's layout (4-space
    indentation, ``null`` spelled out)."""
    writer = ruamel.yaml.YAML()
    writer.indent(mapping=4, sequence=4, offset=2)
    writer.representer.add_representer(
        type(None),
        lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"),
    )
    return writer


def _get(tree, key_path, source=None):
    node = tree
    for key in key_path:
        if not hasattr(node, "get") or key not in node:
            raise ExportError(
                f"{source or 'hyperparams'}: no {'.'.join(key_path)}; "
                "was the run made with a different recipe version?"
            )
        node = node[key]
    return node


def _is_tagged(node):
    return bool(getattr(getattr(node, "tag", None), "value", None))


def _plain(value):
    """A YAML value as plain Python (lists in flow style when dumped)."""
    value = json.loads(json.dumps(value))
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def _plain_args(node):
    return {
        name: json.loads(json.dumps(value))
        for name, value in node.items()
        if not _is_tagged(value)
    }


def main(argv=None):
    """``mtmm-export --run <run folder> --out <model folder>``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when the run cannot be exported, 2 for usage
        errors.
    """
    parser = argparse.ArgumentParser(
        prog="mtmm-export",
        description="Package the best checkpoint of a train.py run into a "
        "self-contained model folder for MultimodalEmotionRecognizer.",
    )
    parser.add_argument("--run", required=True, help="train.py output folder")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument(
        "--asr_source",
        help="ASR model for missing transcripts (e.g. openai/whisper-small)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out if not empty"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code
    try:
        out = export_model(args.run, args.out, args.asr_source, args.overwrite)
    except ExportError as error:
        print(f"ExportError: {error}", file=sys.stderr)
        return 1
    with open(out / "export_info.json", encoding="utf-8") as fin:
        info = json.load(fin)
    score = info["validation"].get("score")
    print(f"exported {info['checkpoint']} (validation score {score}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
