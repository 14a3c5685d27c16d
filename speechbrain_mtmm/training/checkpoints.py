"""A SpeechBrain ``Checkpointer`` that survives being killed at any moment.

SpeechBrain writes a checkpoint file by file into its final ``CKPT+...``
folder and deletes old ones with ``shutil.rmtree``. A run killed during
either leaves a folder that looks like a checkpoint but holds a truncated
or missing file, and the next run then fails to resume from it. Written
here because SpeechBrain has no atomic variant. A checkpoint the disk has
no room for (or a folder that cannot be written) is removed and reported
in one line (:class:`~speechbrain_mtmm.atomic.WriteError`); the previous
checkpoints stay as they were.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import logging
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.atomic import write_error, write_problem

logger = get_logger(__name__)

STAGING_PREFIX = ".staging-"
DELETING_PREFIX = ".deleting-"


class AtomicCheckpointer(Checkpointer):
    """Saves into a hidden staging folder, renamed into place when complete.

    A checkpoint folder therefore either does not exist or is complete.
    Checkpoints lacking the file of a registered recoverable (a deletion
    interrupted half-way) are skipped when listing, so recovery falls back
    to the newest complete one. Leftover staging folders of a killed run are
    removed when the checkpointer is created. Protects against the process
    being killed, not against power loss (files are not fsynced).

    Arguments
    ---------
    checkpoints_dir : str
        Folder of the checkpoints.
    recoverables : mapping, optional
        Objects to save, by name.
    **kwargs
        Passed to ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> folder = getfixture("tmpdir")
    >>> ckpt = AtomicCheckpointer(folder, {"model": model})
    >>> saved = ckpt.save_checkpoint(meta={"score": 1.0})
    >>> saved.path.name.startswith("CKPT+"), saved.paramfiles["model"].exists()
    (True, True)
    >>> ckpt.find_checkpoint(max_key="score").path == saved.path
    True
    """

    def __init__(self, checkpoints_dir, recoverables=None, **kwargs):
        # SpeechBrain creates the folder (and its parents) right away, i.e.
        # when a recipe YAML is loaded; a run stopped by bad options would
        # leave an empty run folder. Folders are made at the first save.
        # Not under DDP: another process may be creating the same folder
        # at that moment (removing it under it made its makedirs fail).
        first_new = _first_missing(Path(checkpoints_dir))
        self._staged = None  # the staging folder of the save under way
        super().__init__(checkpoints_dir, recoverables, **kwargs)
        distributed = (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
        )
        if (
            first_new is not None
            and not distributed
            and not any(p.is_file() for p in first_new.rglob("*"))
        ):
            shutil.rmtree(first_new, ignore_errors=True)
        if if_main_process() and self.checkpoints_dir.exists():
            for prefix in (STAGING_PREFIX, DELETING_PREFIX):
                for stale in self.checkpoints_dir.glob(prefix + "*"):
                    logger.info(f"Removing an unfinished checkpoint: {stale}")
                    shutil.rmtree(stale, ignore_errors=True)

    def _new_checkpoint_dirpath(self):
        self._staged = _staging(super()._new_checkpoint_dirpath())
        return self._staged

    def _custom_checkpoint_dirpath(self, name):
        self._staged = _staging(super()._custom_checkpoint_dirpath(name))
        return self._staged

    def save_checkpoint(
        self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO
    ):
        """Saves a checkpoint; see ``Checkpointer.save_checkpoint``.

        Arguments
        ---------
        meta : mapping, optional
            Added to the checkpoint's meta file.
        end_of_epoch : bool
            Whether the checkpoint is at the end of an epoch.
        name : str, optional
            Custom name (gets the ``CKPT+`` prefix).
        verbosity : int
            Logging level of the message.

        Returns
        -------
        Checkpoint or None
            The saved checkpoint (None on non-main processes).
        """
        start = time.time()
        self._staged = None
        try:
            staged = super().save_checkpoint(
                meta or {}, end_of_epoch, name, verbosity=logging.DEBUG
            )
        except (OSError, RuntimeError) as error:
            self._failed_save(error)
            raise
        ddp_barrier()
        # Under DDP every process lists the checkpoints right after saving
        # (save_and_keep_only): all must see the renamed folder, or they
        # disagree on what to delete and wait on each other forever
        if staged is None:
            ddp_barrier()  # until the main process has renamed it
            return None
        final = staged.path.with_name(staged.path.name[len(STAGING_PREFIX) :])
        if final.exists():  # a custom name saved again: replace it
            trash = final.with_name(DELETING_PREFIX + final.name)
            os.replace(final, trash)
            shutil.rmtree(trash)
        os.replace(staged.path, final)
        ddp_barrier()
        kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
        size = sum(f.stat().st_size for f in final.iterdir() if f.is_file())
        logger.log(
            verbosity,
            f"Saved an {kind} checkpoint in {final} ({size / 2**20:.1f} MB, "
            f"{time.time() - start:.2f} s)",
        )
        paramfiles = {k: final / p.name for k, p in staged.paramfiles.items()}
        return Checkpoint(final, staged.meta, paramfiles)

    def _failed_save(self, error):
        """Removes a checkpoint that could not be written; a full disk or
        a folder that cannot be written becomes one line naming it.

        Raises
        ------
        WriteError
            For those; other errors are left to the caller.
        """
        cause = error
        if not isinstance(error, OSError) and self.checkpoints_dir.is_dir():
            # torch's zip writer gives no cause: ask the disk, while the
            # partial checkpoint still takes its space
            cause = write_problem(self.checkpoints_dir)
        if self._staged is not None:
            shutil.rmtree(self._staged, ignore_errors=True)
        report = None
        if cause is not None:
            report = write_error(
                self.checkpoints_dir,
                cause,
                "saving a checkpoint",
                "run the same command again to resume (the previous "
                "checkpoints are intact)",
            )
        if report is not None:
            raise report from None

    def _list_checkpoint_dirs(self):
        if not self.checkpoints_dir.exists():
            return []
        complete = []
        for folder in super()._list_checkpoint_dirs():
            missing = [
                name
                for name in self.recoverables
                if not (folder / f"{name}{PARAMFILE_EXT}").exists()
            ]
            if missing:
                logger.warning(
                    f"Skipping incomplete checkpoint {folder} (no file for "
                    f"{', '.join(missing)})"
                )
            else:
                complete.append(folder)
        return complete


#: When end-of-epoch checkpoints are saved (the recipes' epoch_checkpoints)
EPOCH_CHECKPOINTS = ("needed", "every")


def save_epoch_checkpoint(
    checkpointer, stats, epoch, policy="needed", interval_minutes=0.0
):
    """Saves an end-of-epoch checkpoint if testing or resuming needs it.

    The test reads the checkpoint of the best validation ``score``, so an
    epoch that is the best so far (or ties it) is saved; a killed run
    resumes from its newest checkpoint and trains the epochs after it
    again, with the random generators, data order, schedule and optimizer
    restored (:class:`RandomState`), so it ends with the results of an
    uninterrupted run whichever epochs were saved. Other epochs are saved
    only once the newest checkpoint is ``interval_minutes`` old (what a
    kill may cost); with ``policy="every"``, every epoch is (SpeechBrain's
    usual ``save_and_keep_only``). The best and the newest checkpoint are
    kept, as before.

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        The run's checkpointer.
    stats : dict
        The validation stats, with ``score`` (saved as the meta).
    epoch : int
        The epoch (for the log).
    policy : str
        ``"needed"`` or ``"every"``.
    interval_minutes : float
        Longest time without a checkpoint (0: only best epochs).

    Returns
    -------
    bool
        Whether a checkpoint was saved.

    Example
    -------
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = AtomicCheckpointer(getfixture("tmpdir"), {"model": model})
    >>> [save_epoch_checkpoint(ckpt, {"score": s}, e)
    ...  for e, s in enumerate([0.2, 0.5, 0.4, 0.5], 1)]
    [True, True, False, True]
    """
    if policy not in EPOCH_CHECKPOINTS:
        raise ValueError(
            f"epoch_checkpoints must be one of {EPOCH_CHECKPOINTS}, got "
            f"{policy!r}"
        )
    needed = policy == "every"
    why = "every epoch"
    if not needed:
        best = checkpointer.find_checkpoint(max_key="score")
        newest = checkpointer.find_checkpoint()
        age = time.time() - newest.meta["unixtime"] if newest else 0.0
        if best is None or stats["score"] >= best.meta["score"]:
            needed, why = True, "the best so far"
        elif interval_minutes and age >= 60 * interval_minutes:
            needed, why = True, f"the newest checkpoint is {age:.0f} s old"
    if not needed:
        logger.info(
            f"Epoch {epoch}: no checkpoint (not the best; a resumed run "
            "trains it again, to the same results)"
        )
        return False
    logger.debug(f"Epoch {epoch}: checkpoint ({why})")
    checkpointer.save_and_keep_only(meta=stats, max_keys=["score"])
    return True


@register_checkpoint_hooks
class RandomState:
    """The random generators' states, saved with every checkpoint.

    SpeechBrain restores the model, the optimizer and the data order of a
    resumed run, but not the generators behind dropout and anything else
    drawn during training: a resumed run then ends with other results than
    an uninterrupted one. As a recoverable, this object saves the states of
    torch (CPU and CUDA), numpy and ``random`` and puts them back, so the
    run continues exactly where it stopped.

    Example
    -------
    >>> path = getfixture("tmp_path") / "random.ckpt"
    >>> state = RandomState()
    >>> state.save(path)
    >>> first = torch.rand(2)
    >>> state.load(path)
    >>> torch.equal(torch.rand(2), first)
    True
    """

    @mark_as_saver
    def save(self, path):
        """Saves the generators' states."""
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, py_gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [
                name,
                torch.from_numpy(keys.copy()),
                pos,
                has_gauss,
                gauss,
            ],
            "random": [version, list(internal), py_gauss],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the generators' states."""
        del end_of_epoch
        state = torch.load(path, weights_only=True)
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy(), pos, has_gauss, gauss))
        version, internal, py_gauss = state["random"]
        random.setstate((version, tuple(internal), py_gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _first_missing(path):
    """The outermost of ``path`` and its parents that does not exist."""
    missing = None
    for folder in [path.absolute(), *path.absolute().parents]:
        if folder.exists():
            break
        missing = folder
    return missing


def _staging(path):
    return path.with_name(STAGING_PREFIX + path.name)
