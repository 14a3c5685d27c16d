"""A run's life: one writer per run folder, one set of settings, a clean
end, bad input as one line.

:func:`check_run_folder` locks the run folder and refuses a rerun with other
settings (or, with ``start_over``, discards the old run); :func:`end_run`
leaves a torchrun process group cleanly; :func:`run_main` runs a recipe's
``main`` and turns the errors of :data:`RECIPE_ERRORS` into one line.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import atexit
import gc
import shutil
import sys
from pathlib import Path

import torch
from speechbrain.utils.distributed import (
    ddp_barrier,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.audio import AudioFileError
from speechbrain_mtmm.data.corpora import CORPUS_ERRORS
from speechbrain_mtmm.data.corpus import (
    CorpusError,
)
from speechbrain_mtmm.data.folds import FoldError
from speechbrain_mtmm.encoders import EncoderError
from speechbrain_mtmm.locks import FolderBusyError, FolderLock
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.quiet import quiet_third_party
from speechbrain_mtmm.run_folder import (
    RUN_LOCK,
    SAVE_FOLDER,
    TEST_PREDICTIONS,
    TEST_RESULTS,
    TRAIN_LOG,
    predictions_file,
    stale_settings,
    write_run_config,
)
from speechbrain_mtmm.system import ModelConfigError
from speechbrain_mtmm.training.auxiliary_losses import (
    AuxiliaryOptionsError,
)
from speechbrain_mtmm.training.cache import (
    FeatureCacheError,
)
from speechbrain_mtmm.training.hparams import HparamsError
from speechbrain_mtmm.training.losses import NonFiniteLossError
from speechbrain_mtmm.training.metrics import MetricChoiceError
from speechbrain_mtmm.training.splits import DataError
from speechbrain_mtmm.training.transcripts import (
    TranscriptSettingError,
)

logger = get_logger(__name__)


# the run folder lock of this process, held until it exits
_HELD_LOCKS = []


class RunFolderError(ValueError):
    """A run folder made with other settings; the message says which."""


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
    return {
        key: value
        for key, value in read_plain_yaml(hparams_file, overrides).items()
        if key not in HARMLESS_KEYS and not key.startswith("__")
    }


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


def end_run(brain):
    """Under torchrun, leaves the process group cleanly, all together.

    The DistributedDataParallel wrappers keep the group alive: they are
    dropped first, so that destroying the group closes gloo's connections
    now, while every process is still here. Left to interpreter teardown,
    a process whose peer had already gone aborted ("terminate called
    without an active exception") or crashed after the results were
    written: 3 of 43 two-process runs on a two-core machine before this,
    0 of 40 after, with the cores kept busy.

    Arguments
    ---------
    brain : speechbrain.Brain
        The run's Brain; its modules are unusable afterwards.
    """
    if torch.distributed.is_initialized():
        brain.modules = None
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


#: Errors that mean bad input or options: reported as one line, no trace
RECIPE_ERRORS = (
    *CORPUS_ERRORS,
    CorpusError,
    FoldError,
    AudioFileError,
    FeatureCacheError,
    ModelConfigError,
    EncoderError,
    AuxiliaryOptionsError,
    TranscriptSettingError,
    HparamsError,
    RunFolderError,
    DataError,
    NonFiniteLossError,
    MetricChoiceError,
)


def run_main(main, argv=None):
    """Runs a recipe's ``main``; bad input ends with one line, no trace.

    Arguments
    ---------
    main : callable
        ``main(argv)``.
    argv : list of str, optional
        Default ``sys.argv[1:]``.
    """
    quiet_third_party()  # MTMM_VERBOSE=1 keeps the third-party notices
    try:
        main(sys.argv[1:] if argv is None else argv)
    except RECIPE_ERRORS as error:
        sys.exit(f"{type(error).__name__}: {error}")
