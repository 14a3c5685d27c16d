"""The mechanics a recipe's ``main`` calls, one call each.

A recipe (``recipes/<corpus>/<task>/train.py``) holds its method, as
SpeechBrain's recipes do: its ``Brain`` (forward pass, objectives, stage
ends), its data pipelines and the order of the steps. What those steps
share, and what is not part of any method, lives here:

* hyperparameters: :func:`corpus_overrides` (what a prepared
  ``data_folder`` implies), :func:`load_recipe_hparams` (overrides and
  values checked, an unknown key named in one line);
* the run folder: :func:`check_run_folder` (one writer; a rerun with other
  settings is refused, or, with ``start_over``, discards the old run);
* the corpus: :func:`check_protocol`, :func:`prepare_corpus` (prepared
  once, on the main process), :func:`check_ratings`,
  :func:`split_entries` and :func:`check_split` (a split as the pipelines
  read it, and the protocol facts it must meet), :func:`class_weights`;
* inputs: :func:`prepare_feature_cache` (frozen encoders run once),
  :func:`prepare_asr_transcripts` (ASR run once per corpus);
* batches: :func:`train_loader_options` (fixed, or SpeechBrain's
  ``DynamicBatchSampler``), :func:`evaluation_batches`,
  :func:`plan_training` (optimizer steps, logged);
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
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.distributed import (
    ddp_barrier,
    if_main_process,
    infer_device,
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.audio import AudioFileError
from speechbrain_mtmm.data.corpus import (
    CorpusError,
    corpus_manifest,
    read_corpus_info,
)
from speechbrain_mtmm.data.folds import FoldError, check_fold
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
    write_run_config,
)
from speechbrain_mtmm.training.auxiliary import (
    AuxiliaryOptionsError,
)
from speechbrain_mtmm.training.cache import (
    FeatureCacheError,
    build_feature_caches,
    check_cache_options,
)
from speechbrain_mtmm.training.losses import balanced_class_weights
from speechbrain_mtmm.training.transcripts import (
    TranscriptSettingError,
    cached_transcripts,
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
        except ModelConfigError as error:
            # a value of the YAML the model refuses (a fusion_type, ...)
            raise HparamsError(f"{hparams_file}: {error}") from None
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


def split_entries(path, heard=None):
    """The utterances of one split of a fold, as its data pipelines read
    them.

    Each entry keeps its transcript as ``gold_text`` (CTC's targets) and
    says where its ``text`` comes from (``text_source``): the gold
    transcript, or, with ``heard``, what an ASR model heard.

    Arguments
    ---------
    path : str or path-like
        The split's manifest (``fold_paths(...)[split]``).
    heard : dict, optional
        Utterance id -> ASR transcript, replacing ``text``.

    Returns
    -------
    dict
        Utterance id -> entry.

    Raises
    ------
    FoldError
        The manifest is missing (the data was not prepared there).
    DataError
        An utterance without an ASR transcript.

    Example
    -------
    >>> path = getfixture("tmp_path") / "test.json"
    >>> _ = path.write_text('{"u1": {"text": "hi"}}')
    >>> split_entries(path, {"u1": "high"})["u1"]
    {'text': 'high', 'gold_text': 'hi', 'text_source': 'asr'}
    """
    if not os.path.isfile(path):
        raise FoldError(
            f"{path}: missing; was the data prepared into "
            f"{os.path.dirname(os.path.dirname(os.path.dirname(path)))}?"
        )
    with open(path, encoding="utf-8") as fin:
        data = json.load(fin)
    for utt_id, entry in data.items():
        entry["gold_text"] = entry["text"]
        entry["text_source"] = "gold" if heard is None else "asr"
        if heard is not None:
            if utt_id not in heard:
                raise DataError(f"{path}: {utt_id} has no ASR transcript")
            entry["text"] = heard[utt_id]
    return data


def check_split(
    data,
    split,
    path,
    labels,
    classes_trained=True,
    missing_transcripts="error",
    max_audio_seconds=None,
):
    """Stops on labels outside the label set, on classes with no training
    example, on a split without any class while the classes are trained,
    and on an utterance without a transcript (``missing_transcripts:
    error``); reports cropped audio.

    Arguments
    ---------
    data : dict
        One split's entries (:func:`split_entries`).
    split : str
        Its name.
    path : str
        Its manifest.
    labels : list of str
        The model's classes.
    classes_trained : bool
        The cross-entropy has a weight (``w_ce > 0``).
    missing_transcripts : str
        One of :data:`MISSING_TRANSCRIPTS`.
    max_audio_seconds : float, optional
        The crop length (the cropped utterances are counted).

    Example
    -------
    >>> data = {"u1": {"emo": "a", "duration": 1.0, "gold_text": "",
    ...                "text_source": "gold"}}
    >>> check_split(data, "test", "t.json", ["a"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.DataError: t.json: u1 has no \
transcript (missing_transcripts: empty reads it as an empty text)
    >>> check_split(data, "test", "t.json", ["a"], missing_transcripts="empty")
    """
    if missing_transcripts not in MISSING_TRANSCRIPTS:
        raise HparamsError(
            f"missing_transcripts must be one of {MISSING_TRANSCRIPTS}, not "
            f"{missing_transcripts!r}"
        )
    seen = {e["emo"] for e in data.values()} - {None}
    unknown = seen - set(labels)
    if unknown:
        raise IEMOCAPError(
            f"{path}: labels {sorted(unknown)} are not in labels "
            f"{list(labels)}; set labels to match the data (IEMOCAP: "
            "label_map)"
        )
    if not seen and classes_trained:
        raise DataError(
            f"{path}: no utterance has a class, so the classes cannot be "
            f"{'trained' if split == 'train' else 'scored'}; train the "
            "dimensions only (--w_ce=0) or fix the labels"
        )
    if missing_transcripts == "error":
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
    if max_audio_seconds is not None:
        long = sum(e["duration"] > max_audio_seconds for e in data.values())
        if long:
            logger.info(
                f"{split}: {long} of {len(data)} utterances are longer than "
                f"{max_audio_seconds} s and are cropped (max_audio_seconds)"
            )


def check_protocol(data_folder, protocol, fold, protocols=None):
    """Stops on a protocol or fold the corpus does not have, before any
    folder is made or any data prepared.

    Arguments
    ---------
    data_folder : str
        The corpus (a release, or a prepared folder with ``corpus.json``).
    protocol : str
        The run's protocol.
    fold : int
        Its fold.
    protocols : dict, optional
        Protocol -> folds that the recipe's preparation makes (default:
        IEMOCAP's); a prepared ``data_folder`` brings its own.

    Returns
    -------
    dict or None
        The description of a prepared ``data_folder``.
    """
    info = read_corpus_info(data_folder)
    check_fold(protocol, fold, protocols if info is None else info["protocols"])
    return info


def prepare_corpus(
    prepare,
    data_folder,
    prepare_folder,
    protocol,
    fold,
    protocols=None,
    **options,
):
    """The corpus of a run, prepared once.

    A ``data_folder`` that is already a prepared folder (``corpus.json``,
    :func:`corpus_overrides`) is used as it is. Otherwise ``prepare`` writes
    ``data_folder`` into ``prepare_folder`` on the main process (the others
    wait), and the protocol and fold must be among those it wrote.

    Arguments
    ---------
    prepare : callable
        ``prepare(data_folder=..., save_folder=..., **options)``.
    data_folder : str
        The corpus.
    prepare_folder : str
        Where the preparation goes.
    protocol : str
        The run's protocol.
    fold : int
        Its fold.
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
    info = check_protocol(data_folder, protocol, fold, protocols)
    if info is None:
        run_on_main(
            prepare,
            kwargs={
                "data_folder": data_folder,
                "save_folder": prepare_folder,
                **options,
            },
        )
        info = read_corpus_info(prepare_folder)
        if info is not None:  # the protocols the preparation wrote
            check_fold(protocol, fold, info["protocols"])
    elif os.path.realpath(prepare_folder) != os.path.realpath(data_folder):
        raise DataError(
            f"{data_folder} is a prepared corpus, but prepare_folder is "
            f"{prepare_folder}: leave prepare_folder out (or give the same "
            "folder)"
        )
    return info


def check_ratings(info, folder, rating_scale, weights, n_dims):
    """Stops when the corpus is rated on another scale than the model's,
    or when a dimension with a loss weight is never rated.

    Arguments
    ---------
    info : dict or None
        The corpus description (None: IEMOCAP, rated on 1-5 for every
        dimension).
    folder : str
        The prepared folder (for the message).
    rating_scale : list of float
        The model's ``rating_scale``.
    weights : dict
        Dimension -> loss weight.
    n_dims : int
        Dimensions the model predicts.

    Example
    -------
    >>> info = {"rating_scale": [1.0, 7.0], "dimensions": ["valence"]}
    >>> check_ratings(info, "p", [1.0, 7.0], {"valence": 0.5}, 2)
    >>> check_ratings(info, "p", [1.0, 7.0], {"arousal": 0.5}, 2)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.recipe.DataError: p: no utterance is rated \
for arousal; train without it (--w_arousal=0)
    """
    if info is None:
        return
    scale = info["rating_scale"]
    if scale is not None and list(rating_scale) != list(scale):
        raise DataError(
            f"{folder}: rated on {scale[0]:g}-{scale[1]:g}, but rating_scale "
            f"is {list(rating_scale)}"
        )
    for name in DIMENSIONS[:n_dims]:
        if weights.get(name, 0) > 0 and name not in info["dimensions"]:
            raise DataError(
                f"{folder}: no utterance is rated for {name}; train "
                f"without it (--w_{name}=0)"
            )


def whole_manifest(prepare_folder, info):
    """The manifest of the whole corpus of a prepared folder.

    Arguments
    ---------
    prepare_folder : str
        The prepared folder.
    info : dict or None
        Its description (None: an IEMOCAP preparation).

    Returns
    -------
    str

    Example
    -------
    >>> whole_manifest("p", None).replace(os.sep, "/")
    'p/iemocap.json'
    """
    if info is None:
        return prepared_manifest(prepare_folder)
    return corpus_manifest(prepare_folder, info)


def class_weights(kind, labels, entries):
    """The cross-entropy's class weights, as ``class_weights`` says.

    ``none``: unweighted (the paper); ``balanced``: ``N / (C * n_c)``
    from the training split's counts, as the MSP-Podcast baseline
    (:func:`~speechbrain_mtmm.training.losses.balanced_class_weights`);
    the weights are logged.

    Arguments
    ---------
    kind : str
        ``none`` or ``balanced``.
    labels : list of str
        The classes, in the classifier's order.
    entries : dict
        The training split's entries (their ``emo``).

    Returns
    -------
    torch.Tensor or None
        One weight per class (None when unweighted).

    Example
    -------
    >>> entries = {"u1": {"emo": "a"}, "u2": {"emo": "a"}, "u3": {"emo": "b"}}
    >>> class_weights("balanced", ["a", "b"], entries)
    tensor([0.7500, 1.5000])
    """
    if kind not in ("none", "balanced"):
        raise HparamsError(
            f"class_weights must be none or balanced, not {kind!r}"
        )
    if kind == "none":
        return None
    counts = Counter(e["emo"] for e in entries.values())
    weights = balanced_class_weights([counts[label] for label in labels])
    table = {label: round(float(w), 4) for label, w in zip(labels, weights)}
    logger.info("Class weights (from the training counts): %s", table)
    return weights


def end_run():
    """Under torchrun, leaves the process group cleanly, all together (a
    gloo group still alive at interpreter exit aborts the process after the
    results are written)."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def prepare_feature_cache(
    enabled,
    system,
    modalities,
    paths,
    folder,
    batch_size=8,
    run_opts=None,
    empty_text=False,
):
    """With ``feature_cache``: the frozen encoders' features of the fold.

    Computes what is not cached yet (main process only; all folds and
    seeds share the cache) and returns, on every process, where each
    utterance's features are.

    Arguments
    ---------
    enabled : bool
        ``feature_cache`` (the options are checked either way).
    system : speechbrain_mtmm.model.MultimodalEmotionSystem
        The model (its encoders).
    modalities : list of str
        The modalities the model reads.
    paths : dict
        The fold's split manifests (``fold_paths``); any other test set
        beside them (MSP-Podcast's ``test2.json``) is cached too.
    folder : str or path-like
        Where the cache goes (``feature_cache_folder``).
    batch_size : int
        Utterances per encoder call while caching.
    run_opts : dict, optional
        SpeechBrain run options (``device``).
    empty_text : bool
        A missing transcript reads as an empty text.

    Returns
    -------
    dict or None
        Modality -> {utterance id: file}; None without the cache.
    """
    modalities = [m for m in MODALITIES if m in modalities]
    check_cache_options(
        enabled, {m: system.encoder(m).freeze_policy for m in modalities}
    )
    if not enabled:
        return None
    device = (run_opts or {}).get("device") or infer_device()
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
            "empty_text": empty_text,
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
    device = run_opts.get("device") or infer_device()

    def transcribe(progress=True):
        """The corpus' transcripts, from the cache or computed into it."""
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


def optimizer_steps(
    train_set,
    sampler,
    number_of_epochs,
    batch_size,
    grad_accumulation_factor=1,
    max_batch_length=None,
    world_size=1,
):
    """Optimizer steps of the whole training, and the effective batch.

    Arguments
    ---------
    train_set : sequence
        The training split.
    sampler : DynamicBatchSampler or None
        With dynamic batching: its batches are counted.
    number_of_epochs : int
        Epochs.
    batch_size : int
        Utterances per batch (fixed batches).
    grad_accumulation_factor : int
        Batches per optimizer step.
    max_batch_length : float, optional
        Seconds of audio per batch (dynamic batches).
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
    >>> optimizer_steps(list(range(17)), None, 2, 4, 2)
    (6, '4 utterances x 2 accumulated x 1 process')
    """
    accumulate = int(grad_accumulation_factor)
    if sampler is not None:
        batches = len(sampler)
        unit = f"{max_batch_length} s of audio"
    else:
        batches = math.ceil(len(train_set) / batch_size)
        unit = f"{batch_size} utterances"
    per_epoch = math.ceil(math.ceil(batches / world_size) / accumulate)
    processes = "process" if world_size == 1 else "processes"
    effective = f"{unit} x {accumulate} accumulated x {world_size} {processes}"
    return number_of_epochs * per_epoch, effective


def plan_training(
    train_set,
    sampler,
    number_of_epochs,
    batch_size,
    grad_accumulation_factor=1,
    max_batch_length=None,
    selection=(),
):
    """Logs what one optimizer step sees; returns the run's optimizer steps
    (what ``warmup_linear`` spreads its schedule over).

    Arguments
    ---------
    train_set : sequence
        The training split.
    sampler : DynamicBatchSampler or None
        With dynamic batching.
    number_of_epochs, batch_size, grad_accumulation_factor, max_batch_length
        As for :func:`optimizer_steps` (the accumulation the ``Brain``
        applies).
    selection : list of str
        The validation scores that select the tested checkpoint (logged).

    Returns
    -------
    int
        Optimizer steps over all epochs (per process).
    """
    world_size = 1
    if torch.distributed.is_initialized():
        world_size = torch.distributed.get_world_size()
    steps, effective_batch = optimizer_steps(
        train_set,
        sampler,
        number_of_epochs,
        batch_size,
        grad_accumulation_factor,
        max_batch_length,
        world_size,
    )
    logger.info(
        f"effective batch: {effective_batch}; {steps} optimizer steps; "
        f"selection on validation {list(selection)}"
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
