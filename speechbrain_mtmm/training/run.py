"""A run's life: one writer per run folder, one set of settings, a clean
end, bad input as one line.

:func:`check_run_folder` locks the run folder and refuses a rerun with other
settings (or, with ``start_over``, discards the old run); :func:`end_run`
leaves a torchrun process group cleanly; :func:`run_main` runs a recipe's
``main`` and turns the errors of :data:`RECIPE_ERRORS`, a full disk and a
folder that cannot be written into one line, and removes a run folder it
made that holds nothing but what the start wrote
(:func:`discard_unused_run_folder`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import atexit
import dataclasses
import gc
import os
import shutil
import sys
from pathlib import Path

import torch
from speechbrain.utils.distributed import (
    ddp_barrier,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.atomic import WriteError, write_error
from speechbrain_mtmm.data.audio import AudioFileError
from speechbrain_mtmm.data.corpora import CORPUS_ERRORS
from speechbrain_mtmm.data.corpus import (
    CorpusError,
)
from speechbrain_mtmm.data.folds import FoldError
from speechbrain_mtmm.encoders import EncoderError
from speechbrain_mtmm.locks import FolderBusyError, FolderLock
from speechbrain_mtmm.plain_yaml import YamlSyntaxError, read_plain_yaml
from speechbrain_mtmm.quiet import quiet_third_party
from speechbrain_mtmm.run_folder import (
    HYPERPARAMS,
    RUN_CONFIG,
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
# (run folder, outermost folder made for it) when this process made it
_MADE_FOLDERS = []

#: What a run writes before it trains (SpeechBrain's experiment folder:
#: the YAML, the environment, the log, and a copy of the script)
START_FILES = (RUN_LOCK, RUN_CONFIG, HYPERPARAMS, "env.log", "log.txt")


class DDPSettingError(ValueError):
    """A torchrun launch whose options cannot work; the message names the
    option."""


def choose_ddp_backend(run_opts):
    """Under torchrun, a CPU run takes gloo as its process group backend.

    SpeechBrain's default backend is nccl, which needs a GPU per process:
    ``torchrun ... --device=cpu`` stopped with "Not enough GPUs available!"
    unless given ``--distributed_backend=gloo``. A CPU run (``--device=cpu``,
    or no device given on a machine without CUDA) that names no backend
    gets gloo, as if given on the command line (so SpeechBrain's Brain
    applies it too); one that names nccl is refused in one line. GPU runs
    and single-process runs are left as they are. Call it before
    SpeechBrain's ``ddp_init_group``.

    Arguments
    ---------
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
        As ``parse_arguments`` returns them.

    Returns
    -------
    speechbrain.utils.run_opts.RunOptions or dict
        The run options, of the same kind (a new object when changed:
        ``RunOptions`` is frozen).

    Raises
    ------
    DDPSettingError
        nccl asked for a CPU run.

    Example
    -------
    >>> import os
    >>> from unittest import mock
    >>> opts = {"device": "cpu", "distributed_backend": "nccl",
    ...         "overridden_args": {"device"}}
    >>> with mock.patch.dict(os.environ, {"RANK": "0", "LOCAL_RANK": "0"}):
    ...     choose_ddp_backend(opts)["distributed_backend"]
    'gloo'
    """
    if os.environ.get("RANK") is None or os.environ.get("LOCAL_RANK") is None:
        return run_opts
    device = run_opts["device"]
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not str(device).startswith("cpu"):
        return run_opts
    given = set(run_opts["overridden_args"])
    if "distributed_backend" in given:
        if run_opts["distributed_backend"] == "nccl":
            raise DDPSettingError(
                "--distributed_backend=nccl needs one GPU per process, and "
                f"this run is on the CPU (--device={device}): leave "
                "--distributed_backend out (gloo is taken on the CPU) or "
                "give --distributed_backend=gloo"
            )
        return run_opts
    changes = {
        "distributed_backend": "gloo",
        "overridden_args": given | {"distributed_backend"},
    }
    if isinstance(run_opts, dict):
        return {**run_opts, **changes}
    return dataclasses.replace(run_opts, **changes)


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
    "epoch_checkpoints",
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
    folder = Path(folder)
    made = None
    for path in [folder.absolute(), *folder.absolute().parents]:
        if path.exists():
            break
        made = path
    lock = FolderLock(folder, RUN_LOCK, "run folder")
    try:
        lock.acquire()
    except FolderBusyError as error:
        raise RunFolderError(str(error)) from None
    _HELD_LOCKS.append(lock)
    if made is not None:
        _MADE_FOLDERS.append((folder, made))
    atexit.register(lock.release)


def discard_unused_run_folder():
    """Removes the run folder this process made, if nothing was trained.

    A run refused after its folder was made (bad data found while
    preparing, a full disk) leaves no folder behind: the folder goes when
    it holds only :data:`START_FILES`, the script's copy and empty
    folders, and so do the parents made for it, when empty. A folder that
    existed before, or holds anything else, is left alone.

    Returns
    -------
    list of pathlib.Path
        The folders removed.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "runs" / "run"
    >>> hold_run_lock(folder)
    >>> _ = (folder / "log.txt").write_text("refused")
    >>> [p.name for p in discard_unused_run_folder()], folder.exists()
    (['runs'], False)
    """
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    removed = []
    while _MADE_FOLDERS:
        folder, made = _MADE_FOLDERS.pop()
        if not folder.is_dir() or not all(
            (path.is_file() and path.name in (*START_FILES, script))
            or (path.is_dir() and not any(path.rglob("*")))
            for path in folder.iterdir()
        ):
            continue
        for lock in list(_HELD_LOCKS):
            if lock.folder == folder:
                lock.release()
                _HELD_LOCKS.remove(lock)
        shutil.rmtree(folder, ignore_errors=True)
        gone = folder.absolute()
        while gone != made:
            parent = gone.parent
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
            gone = parent
        removed.append(gone)
    return removed


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
    YamlSyntaxError,
    RunFolderError,
    DDPSettingError,
    DataError,
    NonFiniteLossError,
    MetricChoiceError,
    WriteError,
)


def run_main(main, argv=None):
    """Runs a recipe's ``main``; bad input ends with one line, no trace.

    The errors of :data:`RECIPE_ERRORS`, a full disk and a folder that
    cannot be written (:func:`~speechbrain_mtmm.atomic.write_error`;
    naming the file, or else the run folder) end the process with one
    line; a run folder made by this run and still holding nothing is
    removed (:func:`discard_unused_run_folder`), also when SpeechBrain
    stops with a message. Other errors are programming errors and keep
    their traceback.

    Arguments
    ---------
    main : callable
        ``main(argv)``.
    argv : list of str, optional
        Default ``sys.argv[1:]``.

    Example
    -------
    >>> def main(argv):
    ...     raise HparamsError(f"x.yaml: no key {argv[0]} to override")
    >>> run_main(main, ["fusion_typ"])
    Traceback (most recent call last):
    ...
    SystemExit: HparamsError: x.yaml: no key fusion_typ to override
    """
    quiet_third_party()  # MTMM_VERBOSE=1 keeps the third-party notices
    try:
        main(sys.argv[1:] if argv is None else argv)
    except RECIPE_ERRORS as error:
        discard_unused_run_folder()
        sys.exit(f"{type(error).__name__}: {error}")
    except OSError as error:
        folders = [lock.folder for lock in _HELD_LOCKS]
        where = error.filename or (folders[0] if folders else None)
        report = write_error(where, error) if where else None
        if report is None:
            raise
        discard_unused_run_folder()
        sys.exit(f"{type(report).__name__}: {report}")
    except SystemExit as stop:  # SpeechBrain refusing with a message
        if stop.code not in (0, None):
            discard_unused_run_folder()
        raise
