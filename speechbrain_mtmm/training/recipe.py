"""What a recipe's ``main`` needs besides its method: the fold's datasets,
the training loader, the feature cache, and one-line errors.

A recipe (``recipes/<corpus>/train.py``) keeps the method: its ``Brain``
(forward pass, objectives, stage ends) and the order of the steps. The
bookkeeping those steps share lives here, so that another corpus or system
reuses it instead of copying it:

* :func:`fold_datasets`: a fold's train/valid/test ``DynamicItemDataset``
  from a prepared manifest (16 kHz audio cropped to the model's
  ``max_audio_seconds``, tokens of the model's text encoder, the label in
  the model's class order, dimensions on the model's 0-1 scale), or the
  cached features instead of audio and tokens;
* :func:`prepare_feature_cache`: with ``feature_cache: True``, the frozen
  encoders' features computed once on the main process;
* :func:`train_loader_options`: fixed batches or SpeechBrain's
  ``DynamicBatchSampler``; :func:`evaluation_batches`: validation and test
  batches of similar durations (less padding, same predictions);
* :func:`load_recipe_hparams`: the YAML with overrides, an unknown key
  named in one line (with the keys renamed in 0.2);
* :func:`check_run_folder`: a run folder knows the settings it was
  trained with; a rerun with other settings is refused (or, with
  ``start_over``, its old checkpoints and results are discarded);
* :func:`run_recipe`: runs ``main`` and turns bad input into one line.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import atexit
import difflib
import json
import math
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import ruamel.yaml
import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_init_group,
    if_main_process,
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.audio import AudioFileError, load_audio
from speechbrain_mtmm.data.corpus import (
    CorpusError,
    corpus_manifest,
    read_corpus_info,
)
from speechbrain_mtmm.data.folds import FoldError, check_fold, fold_paths
from speechbrain_mtmm.data.iemocap import IEMOCAPError, prepared_manifest
from speechbrain_mtmm.data.msp_podcast import MSPPodcastError
from speechbrain_mtmm.encoders import MODALITIES, EncoderError
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.locks import FolderBusyError, FolderLock
from speechbrain_mtmm.model import ModelConfigError
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    RUN_LOCK,
    SAVE_FOLDER,
    TEST_PREDICTIONS,
    TEST_RESULTS,
    TRAIN_LOG,
    predictions_file,
    stale_settings,
    to_unit,
    write_run_config,
)
from speechbrain_mtmm.training.auxiliary import (
    AuxiliaryOptionsError,
    character_encoder,
    character_targets,
    check_auxiliary_options,
)
from speechbrain_mtmm.training.cache import (
    FeatureCacheError,
    build_feature_caches,
    check_cache_options,
    feature_pipeline,
)
from speechbrain_mtmm.training.losses import balanced_class_weights
from speechbrain_mtmm.training.metrics import selection_metrics
from speechbrain_mtmm.training.transcripts import (
    TranscriptSettingError,
    cached_transcripts,
    check_transcript_settings,
)

logger = get_logger(__name__)

# the run folder lock of this process, held until it exits
_HELD_LOCKS = []

#: Errors that mean bad input or options: reported as one line, no trace
RECIPE_ERRORS = (
    IEMOCAPError,
    CorpusError,
    MSPPodcastError,
    FoldError,
    AudioFileError,
    FeatureCacheError,
    ModelConfigError,
    EncoderError,
    AuxiliaryOptionsError,
    TranscriptSettingError,
)


#: Recipe keys renamed in speechbrain-mtmm 0.2 (old name -> new name)
RENAMED_KEYS = {
    "audio_cache_layers": "audio_layers",
    "text_cache_layers": "text_layers",
}


class DataError(ValueError):
    """A manifest entry the recipe cannot use; the message names it."""


class HparamsError(ValueError):
    """An override the recipe YAML does not have; the message names it."""


class RunFolderError(ValueError):
    """A run folder made with other settings; the message says which."""


#: Counts and sizes of a recipe that must be positive
POSITIVE_KEYS = (
    "number_of_epochs",
    "batch_size",
    "grad_accumulation_factor",
    "max_audio_seconds",
    "max_batch_length",
    "num_buckets",
    "sample_rate",
    "text_max_length",
    "encoder_light_size",
    "feature_cache_batch_size",
    "d_model",
    "n_heads",
    "refinement_layers",
    "refinement_ffn",
    "bridge_tokens",
    "fusion_layers",
    "lr",
)

#: Keys that say where things go or how fast, not what is trained: a run
#: folder's settings leave them out
HARMLESS_KEYS = (
    "data_folder",
    "prepare_folder",
    "output_folder",
    "save_folder",
    "train_log",
    "experiment",
    "hf_cache",
    "feature_cache_folder",
    "feature_cache_batch_size",
    "num_workers",
    "ckpt_interval_minutes",
    "valid_dataloader_opts",
    "eval_batching",
    "start_over",
    "asr_cache_folder",
    "asr_batch_size",
)


def run_settings(hparams_file, overrides=""):
    """What a run is trained with: the recipe's plain top-level settings,
    references and overrides resolved, nothing built.

    Objects (``!new:``, ``!apply:``, ...) are left out: their arguments are
    references to plain keys, which are in. So are :data:`HARMLESS_KEYS`.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        Its overrides.

    Returns
    -------
    dict
        Key -> plain value.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("lr: 0.1\\nout: !ref <lr>\\nnum_workers: 4")
    >>> run_settings(path, {"lr": 0.2})
    {'lr': 0.2, 'out': 0.2}
    """
    with open(hparams_file, encoding="utf-8") as fin:
        text = resolve_references(fin, overrides).getvalue()
    tree = ruamel.yaml.YAML().load(text)
    settings = {}
    for key, value in tree.items():
        if key in HARMLESS_KEYS or key.startswith("__") or _tagged(value):
            continue
        settings[key] = json.loads(json.dumps(value))
    return settings


def _tagged(node):
    if getattr(getattr(node, "tag", None), "value", None):
        return True
    if isinstance(node, dict):
        return any(_tagged(v) for v in node.values())
    if isinstance(node, list):
        return any(_tagged(v) for v in node)
    return False


def hold_run_lock(folder):
    """Takes the run folder's lock for the rest of this process.

    One process trains into a run folder: a second one (a repeated
    command, a restarted sweep) is refused while the first lives. The lock
    is released at exit, and by the system when the process is killed.

    Arguments
    ---------
    folder : str or path-like
        The run folder (created here).

    Raises
    ------
    RunFolderError
        Naming the process that holds it.
    """
    lock = FolderLock(folder, RUN_LOCK, "run folder")
    try:
        lock.acquire()
    except FolderBusyError as error:
        raise RunFolderError(str(error)) from None
    _HELD_LOCKS.append(lock)
    atexit.register(lock.release)


def check_run_folder(hparams_file, overrides, output_folder, start_over=False):
    """Locks the run folder; refuses one made with other settings.

    A run folder records its settings (``run_config.json``) when training
    starts. The same command again resumes; other settings would test the
    old checkpoints or mix them with new ones, so they are refused with the
    differences, unless ``start_over`` discards the old checkpoints,
    results and log first. Call it on every process; only the main one
    takes the lock (:func:`hold_run_lock`) and writes.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        Its overrides (the settings are :func:`run_settings` of both).
    output_folder : str or path-like
        The run folder.
    start_over : bool
        Discard a run made with other settings instead of refusing.

    Raises
    ------
    RunFolderError
        Naming the folder and the differing settings, or the process
        that trains into it now.
    """
    folder = Path(output_folder)
    if if_main_process():
        hold_run_lock(folder)
    settings = run_settings(hparams_file, overrides)
    differences = stale_settings(folder, lambda: settings)
    if differences and not start_over:
        shown = "; ".join(differences[:6])
        more = (
            f" and {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        raise RunFolderError(
            f"{folder}: made with other settings ({shown}{more}); give "
            "another --output_folder, or --start_over=True to discard its "
            "checkpoints and results"
        )
    if if_main_process():
        if differences:
            logger.warning(f"{folder}: start_over, discarding the old run")
            shutil.rmtree(folder / SAVE_FOLDER, ignore_errors=True)
            for name in (TEST_RESULTS, TEST_PREDICTIONS, TRAIN_LOG):
                (folder / name).unlink(missing_ok=True)
            # the predictions of other test sets (test2_predictions.jsonl)
            for path in folder.glob(predictions_file("*")):
                path.unlink(missing_ok=True)
        write_run_config(folder, settings)
    ddp_barrier()


def check_values(hparams_file, defaults, overrides):
    """Refuses a value of the wrong kind, or a count or size below 1.

    A key whose recipe value is a plain boolean, integer or number keeps
    that kind (an integer where a number is expected is fine); the keys of
    :data:`POSITIVE_KEYS` must be positive. Checked before anything is
    built, so that ``--lr=abc`` or ``--batch_size=0`` is one line naming
    the key rather than a traceback from where the value is first used.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML (for the message).
    defaults : dict
        Its top-level keys, as ruamel reads them (tags unresolved).
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Raises
    ------
    HparamsError
        Naming the key, the value and what was expected.

    Example
    -------
    >>> defaults = {"lr": 0.1, "batch_size": 8, "refinement": True}
    >>> check_values("x.yaml", defaults, "lr: 1\\nrefinement: False")
    >>> check_values("x.yaml", defaults, "lr: abc")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.HparamsError: x.yaml: lr must be a \
number (like 0.1), not 'abc'
    >>> check_values("x.yaml", defaults, {"batch_size": 0})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.HparamsError: x.yaml: batch_size must \
be positive, not 0
    """
    if isinstance(overrides, str):
        overrides = ruamel.yaml.YAML().load(overrides) or {}
    values = {**defaults, **(overrides or {})}
    for key, value in (overrides or {}).items():
        default = defaults.get(key)
        if isinstance(default, bool):
            kind, ok = "True or False", isinstance(value, bool)
        elif isinstance(default, int):
            kind = "an integer"
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            kind = "a number"
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise HparamsError(
                f"{hparams_file}: {key} must be {kind} (like {default}), "
                f"not {value!r}"
            )
    for key in POSITIVE_KEYS:
        value = values.get(key)
        if isinstance(value, (int, float)) and not value > 0:
            raise HparamsError(
                f"{hparams_file}: {key} must be positive, not {value}"
            )


def corpus_overrides(hparams_file, overrides=""):
    """The overrides, with what a prepared ``data_folder`` implies.

    When ``data_folder`` is a folder written by ``mtmm prepare csv`` or
    ``mtmm prepare msp-podcast`` (it holds ``corpus.json``), the recipe
    trains on it as it is: ``prepare_folder`` is that folder, and
    ``labels``, ``rating_scale`` and the default ``protocol`` are the
    corpus' own. Keys given on the command line win; keys the YAML does
    not have are left alone.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Returns
    -------
    str or dict
        The overrides, of the same kind, with the implied keys added.

    Example
    -------
    >>> from speechbrain_mtmm.data.corpus import write_corpus_info
    >>> tmp = getfixture("tmp_path")
    >>> _ = write_corpus_info(tmp, corpus="csv", manifest="m.json",
    ...     labels=["a", "b"], dimensions=[], rating_scale=[1.0, 7.0],
    ...     protocols={"split": 1}, source="c.csv")
    >>> path = tmp / "x.yaml"
    >>> _ = path.write_text("data_folder: !PLACEHOLDER\\nlabels: [x]\\n"
    ...                     "protocol: speaker\\nprepare_folder: p\\n")
    >>> extra = corpus_overrides(path, {"data_folder": str(tmp)})
    >>> extra["labels"], extra["protocol"], extra["prepare_folder"] == str(tmp)
    (['a', 'b'], 'split', True)
    """
    with open(hparams_file, encoding="utf-8") as fin:
        defaults = ruamel.yaml.YAML().load(fin) or {}
    given = overrides
    if isinstance(overrides, str):
        given = ruamel.yaml.YAML().load(overrides) or {}
    data_folder = given.get("data_folder", defaults.get("data_folder"))
    if not isinstance(data_folder, str):
        return overrides
    info = read_corpus_info(data_folder)
    if info is None:
        return overrides
    implied = {
        "prepare_folder": str(data_folder),
        "labels": list(info["labels"]),
        "rating_scale": info["rating_scale"],
        "protocol": next(iter(info["protocols"])),
    }
    added = {
        key: value
        for key, value in implied.items()
        if key in defaults and key not in given and value is not None
    }
    logger.info(
        "%s is a prepared %s corpus: %s",
        data_folder,
        info["corpus"],
        ", ".join(f"{k}={v}" for k, v in added.items()),
    )
    if isinstance(overrides, str):
        lines = [
            f"{key}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in added.items()
        ]
        return "\n".join([overrides.rstrip(), *lines]).lstrip()
    return {**overrides, **added}


def load_recipe_hparams(hparams_file, overrides=""):
    """Loads a recipe YAML with command-line overrides.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Returns
    -------
    dict
        The built hyperparameters.

    Raises
    ------
    HparamsError
        For an override of a key the YAML does not have, with the new name
        of a renamed key or the closest existing keys; for a value of the
        wrong kind (:func:`check_values`) or one an object of the YAML
        refuses.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("fusion_type: bridge_crossed")
    >>> load_recipe_hparams(path, {"fusion_type": "pooled_mean"})
    {'fusion_type': 'pooled_mean'}
    >>> load_recipe_hparams(path, {"fusion_typ": "pooled_mean"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.HparamsError: ...x.yaml: no key \
fusion_typ to override (did you mean fusion_type?)
    """
    with open(hparams_file, encoding="utf-8") as fin:
        defaults = ruamel.yaml.YAML().load(fin)
    check_values(hparams_file, defaults, overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        try:
            return load_hyperpyyaml(fin, overrides)
        except KeyError as error:
            found = re.match(
                r"Override '([^']+)' not found", str(error.args[0])
            )
            if not found:
                raise
            key = found[1]
        except RECIPE_ERRORS:
            raise
        except (ValueError, TypeError) as error:
            # an object of the YAML refused its arguments (they name the key)
            raise HparamsError(f"{hparams_file}: {error}") from None
    keys = list(defaults)
    if key in RENAMED_KEYS:
        hint = f" (renamed {RENAMED_KEYS[key]} in speechbrain-mtmm 0.2)"
    else:
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise HparamsError(f"{hparams_file}: no key {key} to override{hint}")


#: What a recipe does with an utterance that has no transcript
MISSING_TRANSCRIPTS = ("error", "empty")
#: Label index of an utterance rated for the dimensions only (ignored by
#: the cross-entropy, as torch's ``ignore_index`` default)
NO_CLASS = -100


def emotion_pipelines(system, max_audio_seconds=None, missing_text="error"):
    """The dynamic items of an utterance for a given model.

    Arguments
    ---------
    system : speechbrain_mtmm.model.MultimodalEmotionSystem
        The model: its text encoder's tokenizer, labels, dimensions, rating
        scale and sample rate.
    max_audio_seconds : float, optional
        Crop length of the audio (None: the model's).
    missing_text : str
        An utterance without a transcript (``text: null`` or empty):
        ``"error"`` stops naming it; ``"empty"`` gives the model the empty
        text, as when an ASR model hears no words (MSP-Podcast: some
        utterances have no transcript).

    Returns
    -------
    dict
        Output key -> dynamic item: ``sig`` (waveform), ``tokens``,
        ``chars`` (CTC character ids of the transcript,
        :func:`~speechbrain_mtmm.training.auxiliary.character_targets`),
        ``label`` (index into ``system.labels``; :data:`NO_CLASS` for an
        utterance without a class), ``dims`` (0-1; NaN where not rated).
    """
    if missing_text not in MISSING_TRANSCRIPTS:
        raise HparamsError(
            f"missing_transcripts must be one of {MISSING_TRANSCRIPTS}, not "
            f"{missing_text!r}"
        )
    config = system.config
    labels = system.labels
    n_dims = system.n_dims
    scale = config["rating_scale"]
    if max_audio_seconds is None:
        max_audio_seconds = config["max_audio_seconds"]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, config["sample_rate"], max_audio_seconds)

    @sb.utils.data_pipeline.takes("id", "text", "text_source")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(utt_id, text, text_source):
        # an ASR model may hear no words: the model then sees what its
        # tokenizer makes of "" (a gold transcript must not be empty,
        # unless missing_transcripts is "empty")
        empty = not text or not text.strip()
        if empty and text_source != "asr" and missing_text == "error":
            raise DataError(
                f"{utt_id}: empty transcript (missing_transcripts: empty "
                "reads it as an empty text)"
            )
        return system.text_encoder.tokenize(text or "")

    characters = character_encoder()

    @sb.utils.data_pipeline.takes("gold_text", "duration")
    @sb.utils.data_pipeline.provides("chars")
    def chars_pipeline(text, duration):
        # what is said, also when the model reads an ASR transcript; none
        # for cropped audio, which no longer holds all of it (CTC skips)
        if max_audio_seconds is not None and duration > max_audio_seconds:
            return character_targets("", characters)
        return character_targets(text or "", characters)

    @sb.utils.data_pipeline.takes("emo")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(emo):
        return torch.LongTensor(
            [NO_CLASS if emo is None else labels.index(emo)]
        )

    @sb.utils.data_pipeline.takes(*DIMENSIONS[:n_dims])
    @sb.utils.data_pipeline.provides("dims")
    def dims_pipeline(*ratings):
        ratings = [math.nan if r is None else r for r in ratings]
        return to_unit(torch.tensor(ratings, dtype=torch.float), scale)

    return {
        "sig": audio_pipeline,
        "tokens": text_pipeline,
        "chars": chars_pipeline,
        "label": label_pipeline,
        "dims": dims_pipeline,
    }


def fold_datasets(
    hparams,
    cached=None,
    extra_keys=("speaker", "improvised"),
    characters=False,
    transcripts=None,
    extra_tests=(),
):
    """The train/valid/test datasets of the fold named in ``hparams``.

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters: ``system``, ``prepare_folder``,
        ``protocol``, ``fold``, ``max_audio_seconds``,
        ``missing_transcripts``.
    cached : dict, optional
        Modality -> {utterance id: cached feature file} (from
        :func:`prepare_feature_cache`): these replace audio and tokens.
    extra_keys : sequence of str
        Manifest fields passed through to the batches, where every
        utterance of the split has them (IEMOCAP's ``improvised``).
    characters : bool
        Add ``chars``, the CTC targets of the transcripts (``w_ctc``).
    transcripts : dict, optional
        Split -> {utterance id: ASR transcript}: these splits read the
        ASR text (``text_source: asr``; the gold one stays as
        ``gold_text``); the others the gold transcripts.
    extra_tests : sequence of str
        More test sets of the fold, ``<name>.json`` beside ``test.json``
        (MSP-Podcast: ``test2``).

    Returns
    -------
    dict
        ``train``, ``valid``, ``test`` (and ``extra_tests``) ->
        ``DynamicItemDataset``; items hold ``id``, the inputs (``sig`` and
        ``tokens``, or ``<modality>_feats``), ``label``, ``dims``, ``emo``
        and the ``extra_keys`` they have.
    """
    system = hparams["system"]
    pipelines = emotion_pipelines(
        system,
        hparams["max_audio_seconds"],
        hparams.get("missing_transcripts", "error"),
    )
    inputs = {key: pipelines[key] for key in ("sig", "tokens")}
    if cached is not None:
        inputs = {
            f"{modality}_feats": feature_pipeline(modality, files)
            for modality, files in cached.items()
        }
    if characters:
        inputs["chars"] = pipelines["chars"]
    paths = fold_paths(
        hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
    )
    folder = os.path.dirname(paths["test"])
    for name in extra_tests:
        paths[name] = os.path.join(folder, f"{name}.json")
    datasets = {}
    for split, path in paths.items():
        if not os.path.isfile(path):
            raise FoldError(
                f"{path}: missing; was the data prepared into "
                f"{hparams['prepare_folder']}?"
            )
        with open(path, encoding="utf-8") as fin:
            data = json.load(fin)
        asr = (transcripts or {}).get(split)
        for utt_id, entry in data.items():
            entry["gold_text"] = entry["text"]
            entry["text_source"] = "gold" if asr is None else "asr"
            if asr is not None:
                if utt_id not in asr:
                    raise DataError(f"{path}: {utt_id} has no ASR transcript")
                entry["text"] = asr[utt_id]
        dataset = sb.dataio.dataset.DynamicItemDataset(data)
        check_split(dataset, split, path, system.labels, hparams)
        for item in (*inputs.values(), pipelines["label"], pipelines["dims"]):
            dataset.add_dynamic_item(item)
        passed = [
            key
            for key in extra_keys
            if all(key in entry for entry in data.values())
        ]
        dataset.set_output_keys(
            ["id", *inputs, "label", "dims", "emo", *passed]
        )
        datasets[split] = dataset
    return datasets


def check_split(dataset, split, path, labels, hparams):
    """Stops on labels outside the label set, on classes with no training
    example, on a split without any class while the classes are trained
    (``w_ce``), and on an utterance without a transcript
    (``missing_transcripts: error``); reports cropped audio.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        One split.
    split : str
        Its name.
    path : str
        Its manifest.
    labels : list of str
        The model's classes.
    hparams : dict
        ``max_audio_seconds``, ``w_ce``, ``missing_transcripts``.
    """
    data = dataset.data
    seen = {e["emo"] for e in data.values()} - {None}
    unknown = seen - set(labels)
    if unknown:
        raise IEMOCAPError(
            f"{path}: labels {sorted(unknown)} are not in labels "
            f"{list(labels)}; set labels to match the data (IEMOCAP: "
            "label_map)"
        )
    if not seen and hparams.get("w_ce", 0) > 0:
        raise DataError(
            f"{path}: no utterance has a class, so the classes cannot be "
            f"{'trained' if split == 'train' else 'scored'}; train the "
            "dimensions only (--w_ce=0) or fix the labels"
        )
    if hparams.get("missing_transcripts", "error") == "error":
        for utt_id, entry in data.items():
            text = entry.get("gold_text")
            if entry["text_source"] == "gold" and not (text or "").strip():
                raise DataError(
                    f"{path}: {utt_id} has no transcript (missing_transcripts"
                    ": empty reads it as an empty text)"
                )
    unseen = [label for label in labels if label not in seen]
    if split == "train" and unseen:
        raise DataError(
            f"{path}: labels {unseen} have no training example; remove "
            "them from labels or fix label_map"
        )
    limit = hparams["max_audio_seconds"]
    if limit is not None:
        long = sum(e["duration"] > limit for e in data.values())
        if long:
            logger.info(
                f"{split}: {long} of {len(data)} utterances are longer than "
                f"{limit} s and are cropped (max_audio_seconds)"
            )


def check_protocol(hparams, protocols=None):
    """Stops on a protocol or fold the corpus does not have, before any
    folder is made or any data prepared.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``protocol``, ``fold``.
    protocols : dict, optional
        Protocol -> folds that the recipe's preparation makes (default:
        IEMOCAP's); a prepared ``data_folder`` brings its own.

    Returns
    -------
    dict or None
        The description of a prepared ``data_folder``.
    """
    info = read_corpus_info(hparams["data_folder"])
    check_fold(
        hparams["protocol"],
        hparams["fold"],
        protocols if info is None else info["protocols"],
    )
    return info


def prepare_corpus(hparams, prepare, protocols=None, **options):
    """The corpus of a run, prepared once, and checked against the model.

    A ``data_folder`` that is already a prepared folder (``corpus.json``,
    :func:`corpus_overrides`) is used as it is. Otherwise ``prepare`` writes
    ``data_folder`` into ``prepare_folder`` on the main process (the others
    wait). Then the protocol and fold must exist, and every dimension with
    a loss weight must be rated in the corpus.

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``prepare_folder``, ``protocol``, ``fold``,
        ``rating_scale``, ``n_dims`` and the ``w_<dimension>`` weights.
    prepare : callable
        ``prepare(data_folder=..., save_folder=..., **options)``.
    protocols : dict, optional
        Protocol -> folds that ``prepare`` makes, checked before it runs
        (default: IEMOCAP's).
    **options
        Passed to ``prepare``.

    Returns
    -------
    dict or None
        The corpus description (None for an IEMOCAP preparation).
    """
    where = hparams["prepare_folder"]
    info = check_protocol(hparams, protocols)
    if info is None:
        run_on_main(
            prepare,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": where,
                **options,
            },
        )
        info = read_corpus_info(where)
        if info is None:
            return None
        # the protocols the preparation wrote
        check_fold(hparams["protocol"], hparams["fold"], info["protocols"])
    elif os.path.realpath(where) != os.path.realpath(hparams["data_folder"]):
        raise DataError(
            f"{hparams['data_folder']} is a prepared corpus, but "
            f"prepare_folder is {where}: leave prepare_folder out (or give "
            "the same folder)"
        )
    scale = info["rating_scale"]
    ours = list(hparams["system"].config["rating_scale"])
    if scale is not None and ours != list(scale):
        raise DataError(
            f"{where}: rated on {scale[0]:g}-{scale[1]:g}, but rating_scale "
            f"is {ours}"
        )
    for name in DIMENSIONS[: hparams["n_dims"]]:
        if hparams[f"w_{name}"] > 0 and name not in info["dimensions"]:
            raise DataError(
                f"{where}: no utterance is rated for {name}; train "
                f"without it (--w_{name}=0)"
            )
    return info


def set_class_weights(hparams, train_set):
    """Weights the cross-entropy by class as ``class_weights`` says.

    ``none``: unweighted (the paper); ``balanced``: ``N / (C * n_c)``
    from the training split's counts, as the MSP-Podcast baseline
    (:func:`~speechbrain_mtmm.training.losses.balanced_class_weights`).

    Arguments
    ---------
    hparams : dict
        ``class_weights``, ``labels`` and ``compute_loss`` (its
        ``class_weights`` is set).
    train_set : speechbrain.dataio.dataset.DynamicItemDataset
        The training split.

    Returns
    -------
    dict or None
        Label -> weight (None when unweighted).
    """
    kind = hparams.get("class_weights", "none")  # older YAMLs: the paper's
    if kind not in ("none", "balanced"):
        raise HparamsError(
            f"class_weights must be none or balanced, not {kind!r}"
        )
    if kind == "none":
        hparams["compute_loss"].class_weights = None
        return None
    labels = hparams["labels"]
    counts = Counter(e["emo"] for e in train_set.data.values())
    weights = balanced_class_weights([counts[label] for label in labels])
    hparams["compute_loss"].class_weights = weights
    table = {label: round(float(w), 4) for label, w in zip(labels, weights)}
    logger.info("Class weights (from the training counts): %s", table)
    return table


def start_run(argv, protocols=None):
    """The first steps of a recipe run, before any data is touched.

    Parses the command line (SpeechBrain's ``parse_arguments``), joins the
    process group under torchrun, loads the YAML with what a prepared
    ``data_folder`` implies (:func:`corpus_overrides`), stops on a protocol
    or fold the corpus lacks, checks the run folder (a rerun resumes, other
    settings are refused unless ``start_over``) and resolves the validation
    scores that select the tested checkpoint. The recipe then creates its
    experiment folder (SpeechBrain copies the calling script into it).

    Arguments
    ---------
    argv : list of str
        ``train.py``'s arguments.
    protocols : dict, optional
        Protocol -> folds the recipe's preparation makes (default:
        IEMOCAP's).

    Returns
    -------
    hparams_file : str
    run_opts : dict
    overrides : str or dict
        With the implied keys.
    hparams : dict
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # torchrun: one process per device, joined in one process group
    ddp_init_group(run_opts)
    # a prepared folder (mtmm prepare csv|msp-podcast) brings its labels,
    # rating scale and protocol
    overrides = corpus_overrides(hparams_file, overrides)
    hparams = load_recipe_hparams(hparams_file, overrides)
    check_protocol(hparams, protocols)
    # one run folder, one set of settings
    check_run_folder(
        hparams_file, overrides, hparams["output_folder"], hparams["start_over"]
    )
    hparams["selection_metrics"] = selection_metrics(
        hparams["selection_metrics"],
        hparams["w_ce"],
        hparams["w_valence"],
        hparams["w_arousal"],
        hparams["w_dominance"],
    )
    return hparams_file, run_opts, overrides, hparams


def prepare_inputs(hparams, run_opts, corpus=None):
    """What the model reads, ready before training: MMER's options checked,
    the frozen encoders' features cached (``feature_cache``), the
    transcript conditions of the test, and the ASR transcripts when any
    split reads them (one cached pass of ``asr_source`` over the corpus).

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters.
    run_opts : dict
        SpeechBrain's run options.
    corpus : dict, optional
        :func:`prepare_corpus`'s description (None: an IEMOCAP
        preparation).

    Returns
    -------
    cached : dict or None
        :func:`prepare_feature_cache`.
    conditions : list of str
        The test conditions, the headline first.
    asr : dict or None
        Utterance id -> ASR transcript.
    """
    check_auxiliary_options(
        hparams["w_ctc"],
        hparams["w_aug"],
        hparams["feature_cache"],
        hparams["modalities"],
    )
    cached = prepare_feature_cache(
        hparams,
        run_opts,
        hparams["feature_cache_folder"],
        hparams["feature_cache_batch_size"],
    )
    conditions = check_transcript_settings(
        hparams["transcripts"],
        hparams["test_transcripts"],
        hparams["modalities"],
        hparams["feature_cache"],
    )
    asr = None
    if "asr" in (hparams["transcripts"], *conditions):
        folder = hparams["prepare_folder"]
        asr = prepare_asr_transcripts(
            prepared_manifest(folder)
            if corpus is None
            else corpus_manifest(folder, corpus),
            run_opts,
            hparams["asr_source"],
            hparams["asr_cache_folder"],
            hparams["asr_language"],
            hparams["asr_batch_size"],
        )
    return cached, conditions, asr


def end_run():
    """Under torchrun, leaves the process group cleanly, all together (a
    gloo group still alive at interpreter exit aborts the process after the
    results are written)."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def prepare_feature_cache(hparams, run_opts, folder, batch_size=8):
    """With ``feature_cache``: the frozen encoders' features of the corpus.

    Computes what is not cached yet (main process only; all folds and
    seeds share the cache) and returns, on every process, where each
    utterance's features are.

    Arguments
    ---------
    hparams : dict
        ``feature_cache``, ``system``, ``modalities`` and the fold
        (``prepare_folder``, ``protocol``, ``fold``).
    run_opts : dict
        SpeechBrain run options (``device``).
    folder : str or path-like
        Where the cache goes (``feature_cache_folder``).
    batch_size : int
        Utterances per encoder call while caching.

    Returns
    -------
    dict or None
        Modality -> {utterance id: file}; None without the cache.
    """
    system = hparams["system"]
    modalities = [m for m in MODALITIES if m in hparams["modalities"]]
    check_cache_options(
        hparams["feature_cache"],
        {m: system.encoder(m).freeze_policy for m in modalities},
    )
    if not hparams["feature_cache"]:
        return None
    device = run_opts.get("device") or sb.utils.distributed.infer_device()
    paths = fold_paths(
        hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
    )
    # the fold's splits and any other test set beside them (test2.json)
    fold = Path(paths["test"]).parent
    manifests = sorted({*paths.values(), *map(str, fold.glob("*.json"))})
    return run_on_main(
        build_feature_caches,
        kwargs={
            "folder": folder,
            "system": system,
            "modalities": modalities,
            "manifests": manifests,
            "batch_size": batch_size,
            "device": device,
            "empty_text": hparams.get("missing_transcripts") == "empty",
        },
    )


def prepare_asr_transcripts(
    manifest, run_opts, source, cache_folder, language=None, batch_size=8
):
    """The ASR transcripts of a prepared corpus (computed once, cached).

    Computed on the main process (all folds and seeds share the cache),
    then read by the others.

    Arguments
    ---------
    manifest : str or path-like
        The prepared manifest (``iemocap.json``, or the one
        ``corpus.json`` names).
    run_opts : dict
        SpeechBrain run options (``device``).
    source : str
        The ASR model (``asr_source``).
    cache_folder : str or path-like
        The cache root (``asr_cache_folder``).
    language : str, optional
        Whisper's language (None: detected).
    batch_size : int
        Utterances per ASR forward pass.

    Returns
    -------
    dict
        Utterance id -> transcript.
    """
    device = run_opts.get("device") or sb.utils.distributed.infer_device()

    def transcribe(progress=True):
        transcriber = ASRTranscriber(
            source, device=device, language=language, batch_size=batch_size
        )
        return cached_transcripts(cache_folder, transcriber, manifest, progress)

    texts = transcribe() if if_main_process() else None
    ddp_barrier()
    # other processes read the finished cache (nothing left to compute)
    return texts if texts is not None else transcribe(progress=False)


def train_loader_options(
    train_set,
    loader_options,
    sampler_options=None,
    seed=1,
    max_audio_seconds=None,
):
    """Fixed batches of ``batch_size`` or, with ``sampler_options``,
    batches of similar durations holding ``max_batch_length`` seconds.

    Arguments
    ---------
    train_set : speechbrain.dataio.dataset.DynamicItemDataset
        The training split (its ``duration`` fields).
    loader_options : dict
        The loader's options (``train_dataloader_opts``: ``batch_size``,
        ``shuffle``, ``num_workers``).
    sampler_options : dict, optional
        SpeechBrain ``DynamicBatchSampler`` options (the recipe's
        ``dynamic_batch_sampler`` with ``dynamic_batching``); None: fixed
        batches.
    seed : int
        The run's seed (sampler order, workers' seeds).
    max_audio_seconds : float, optional
        Crop length: longer utterances count as this long.

    Returns
    -------
    options : dict
        Keyword arguments of the training loader, with a generator of its
        own (seeded by ``seed``) for its workers' seeds.
    sampler : DynamicBatchSampler or None
        The sampler, whose epoch SpeechBrain sets when it is the Brain's
        ``train_sampler``.
    """
    # Each new DataLoader iterator draws its workers' base seed; from the
    # global generator that draw would shift dropout after a mid-epoch
    # resume (the resumed epoch's iterator is made once more)
    generator = torch.Generator().manual_seed(seed)
    if sampler_options is None:
        return {**loader_options, "generator": generator}, None
    limit = max_audio_seconds or float("inf")
    sampler = DynamicBatchSampler(
        train_set,
        length_func=lambda entry: min(entry["duration"], limit),
        seed=seed,
        **sampler_options,
    )
    return {
        "batch_sampler": sampler,
        "num_workers": loader_options.get("num_workers", 0),
        "generator": generator,
    }, sampler


EVAL_BATCHING = ("fixed", "sorted", "dynamic")


def evaluation_batches(
    dataset,
    mode,
    loader_options,
    max_batch_length=None,
    num_buckets=20,
    max_audio_seconds=None,
):
    """How a validation or test set is batched (``eval_batching``).

    ``fixed``: ``batch_size`` utterances in manifest order; ``sorted``:
    the same, sorted by duration (much less padding); ``dynamic``:
    SpeechBrain's ``DynamicBatchSampler`` without shuffling, batches of at
    most ``max_batch_length`` seconds of padded audio. Encoders report
    exact output lengths, so the predictions do not depend on the choice.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        The validation or test split.
    mode : str
        One of :data:`EVAL_BATCHING`.
    loader_options : dict
        The loader's options (``valid_dataloader_opts``).
    max_batch_length : float, optional
        Seconds of padded audio per batch (``dynamic``).
    num_buckets : int
        Duration buckets of the sampler (``dynamic``).
    max_audio_seconds : float, optional
        Crop length: longer utterances count as this long.

    Returns
    -------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        The split, sorted by duration unless ``fixed``.
    options : dict
        Keyword arguments of its loader.
    """
    if mode not in EVAL_BATCHING:
        raise DataError(
            f"eval_batching must be one of {EVAL_BATCHING}, got {mode!r}"
        )
    if mode == "fixed":
        return dataset, loader_options
    if mode == "sorted":
        return dataset.filtered_sorted(sort_key="duration"), loader_options
    limit = max_audio_seconds or float("inf")
    sampler = DynamicBatchSampler(
        dataset,
        max_batch_length=max_batch_length,
        num_buckets=num_buckets,
        length_func=lambda entry: min(entry["duration"], limit),
        shuffle=False,
        batch_ordering="ascending",
    )
    return dataset, {
        "batch_sampler": sampler,
        "num_workers": loader_options.get("num_workers", 0),
    }


def optimizer_steps(hparams, train_set, sampler=None, world_size=1):
    """Optimizer steps of the whole training, and the effective batch.

    Arguments
    ---------
    hparams : dict
        ``number_of_epochs``, ``batch_size``, ``grad_accumulation_factor``,
        ``dynamic_batching`` and ``max_batch_length``.
    train_set : speechbrain.dataio.dataset.DynamicItemDataset
        The training split.
    sampler : DynamicBatchSampler, optional
        With dynamic batching: its batches are counted.
    world_size : int
        DDP processes (each takes its share of the batches).

    Returns
    -------
    steps : int
        Optimizer steps over all epochs (per process).
    effective_batch : str
        What one optimizer step sees, e.g. ``"16 utterances x 2
        accumulated x 1 process"``.

    Example
    -------
    >>> hparams = {"number_of_epochs": 2, "batch_size": 4,
    ...            "grad_accumulation_factor": 2, "dynamic_batching": False}
    >>> optimizer_steps(hparams, list(range(17)))
    (6, '4 utterances x 2 accumulated x 1 process')
    """
    accumulate = int(hparams["grad_accumulation_factor"])
    if sampler is not None:
        batches = len(sampler)
        unit = f"{hparams['max_batch_length']} s of audio"
    else:
        batches = math.ceil(len(train_set) / hparams["batch_size"])
        unit = f"{hparams['batch_size']} utterances"
    per_epoch = math.ceil(math.ceil(batches / world_size) / accumulate)
    processes = "process" if world_size == 1 else "processes"
    effective = f"{unit} x {accumulate} accumulated x {world_size} {processes}"
    return hparams["number_of_epochs"] * per_epoch, effective


def plan_training(hparams, train_set, sampler=None):
    """Logs what one optimizer step sees; returns the run's optimizer steps.

    Arguments
    ---------
    hparams : dict
        As for :func:`optimizer_steps`, and ``selection_metrics``.
    train_set : speechbrain.dataio.dataset.DynamicItemDataset
        The training split.
    sampler : DynamicBatchSampler, optional
        With dynamic batching.

    Returns
    -------
    int
        Optimizer steps over all epochs (per process).
    """
    world_size = 1
    if torch.distributed.is_initialized():
        world_size = torch.distributed.get_world_size()
    steps, effective_batch = optimizer_steps(
        hparams, train_set, sampler, world_size
    )
    logger.info(
        f"effective batch: {effective_batch}; {steps} optimizer steps; "
        f"selection on validation {hparams['selection_metrics']}"
    )
    return steps


def format_override(value):
    """A Python/YAML value as the text of a ``--key=value`` override.

    Arguments
    ---------
    value : object
        A value loaded from YAML (or already a string).

    Returns
    -------
    str

    Example
    -------
    >>> format_override(False), format_override(["UA"]), format_override(0)
    ('False', '[UA]', '0')
    """
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def check_finite_loss(parts, ids):
    """Stops on a non-finite loss, naming the batch's utterances.

    Arguments
    ---------
    parts : dict
        The loss and its parts (``loss`` included).
    ids : list of str
        The batch's utterance ids.

    Example
    -------
    >>> check_finite_loss({"loss": torch.tensor(float("nan"))}, ["u1"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.DataError: non-finite loss ...
    """
    if not torch.isfinite(parts["loss"]):
        raise DataError(
            f"non-finite loss {parts} in the batch of {ids}: check these "
            "utterances' audio, transcripts and labels"
        )


def run_recipe(main, argv=None):
    """Runs a recipe's ``main``; bad input ends with one line, no trace.

    Arguments
    ---------
    main : callable
        ``main(argv)``.
    argv : list of str, optional
        Default ``sys.argv[1:]``.
    """
    try:
        main(sys.argv[1:] if argv is None else argv)
    except (*RECIPE_ERRORS, DataError, HparamsError, RunFolderError) as error:
        sys.exit(f"{type(error).__name__}: {error}")
