"""Speed figures of a training epoch: padding and throughput.

What fraction of the input positions of a training epoch was padding, per
modality, and how many utterances per second went through, summed over
all DDP processes. The recipe logs them every epoch so that dynamic
batching and mixed precision show their effect where training happens
(SpeechBrain logs neither).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import os
import time

import torch
from speechbrain.utils.distributed import ddp_all_reduce

# Batch keys of each modality's inputs: waveforms/tokens, or cached features
INPUT_KEYS = {False: ("sig", "tokens"), True: ("audio_feats", "text_feats")}
MODALITIES = ("audio", "text")


class EpochSpeed:
    """Counts the padded and total input positions of an epoch's batches.

    An epoch resumed from an intra-epoch checkpoint counts only the
    batches after it: its summary then says after which batch it resumed
    (``resumed_after_batch``). The loss still covers the whole epoch, as
    SpeechBrain checkpoints its running mean with the step.

    Arguments
    ---------
    cached : bool
        The batches hold cached features (``audio_feats``, ``text_feats``)
        instead of waveforms and tokens (``sig``, ``tokens``).
    resumed_after : int
        Batches of the epoch done before this process (``Brain.step`` at
        the start of the stage; 0 for a fresh epoch).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> speed = EpochSpeed(cached=False)
    >>> batch = SimpleNamespace(
    ...     id=["a", "b"],
    ...     sig=(torch.zeros(2, 10), torch.tensor([1.0, 0.5])),
    ...     tokens=(torch.zeros(2, 4), torch.tensor([1.0, 1.0])))
    >>> speed.count(batch)
    >>> stats = speed.summary(stage_loss=0.5)
    >>> stats["loss"], stats["audio_padding"], stats["text_padding"]
    (0.5, 0.25, 0.0)
    """

    def __init__(self, cached=False, resumed_after=0):
        self.keys = INPUT_KEYS[bool(cached)]
        self.resumed_after = int(resumed_after)
        # [padded, total] per modality, then [utterances, unused]
        self.counts = torch.zeros(3, 2)
        self.start = time.time()

    def count(self, batch):
        """Adds a training batch.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``id`` and the padded inputs of each modality.
        """
        for row, key in enumerate(self.keys):
            item = getattr(batch, key, None)
            if item is not None:
                data, lens = item
                total = data.shape[0] * data.shape[1]
                valid = torch.round(lens.float() * data.shape[1]).sum()
                self.counts[row] += torch.tensor([total - valid.item(), total])
        self.counts[2, 0] += len(batch.id)

    def summary(self, stage_loss, device="cpu"):
        """The epoch's loss and speed figures, over all processes.

        Arguments
        ---------
        stage_loss : float
            This process's mean training loss.
        device : str or torch.device
            Where the DDP reduction runs.

        Returns
        -------
        dict
            ``loss`` (mean over processes), ``resumed_after_batch`` (only
            for a resumed epoch), ``audio_padding`` and ``text_padding``
            (fraction of padded input positions, for the modalities seen)
            and ``utt_per_s``.
        """
        world = ddp_all_reduce(
            torch.ones(1, device=device), torch.distributed.ReduceOp.SUM
        )
        totals = ddp_all_reduce(
            torch.cat([self.counts.flatten(), torch.tensor([stage_loss])])
            .double()
            .to(device),
            torch.distributed.ReduceOp.SUM,
        ).cpu()
        counts, loss = totals[:-1].view(3, 2), totals[-1] / world.item()
        stats = {"loss": float(loss)}
        if self.resumed_after:
            stats["resumed_after_batch"] = self.resumed_after
        for row, modality in enumerate(MODALITIES):
            if counts[row, 1] > 0:
                stats[f"{modality}_padding"] = float(
                    counts[row, 0] / counts[row, 1]
                )
        seconds = time.time() - self.start
        stats["utt_per_s"] = float(counts[2, 0]) / max(seconds, 1e-9)
        return stats


def process_age():
    """Seconds since this process started: interpreter start-up and
    imports, when called first thing in ``main`` (Linux ``/proc``).

    Returns
    -------
    float or None
        None where ``/proc`` does not say.

    Example
    -------
    >>> age = process_age()
    >>> age is None or age > 0
    True
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fin:
            # the fields after the command name; the 22nd field overall
            # is the start time in clock ticks after boot
            fields = fin.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as fin:
            uptime = float(fin.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def log_start_up(logger, imported, built):
    """Logs how long the run took to start, for profiling fixed costs.

    Arguments
    ---------
    logger : logging.Logger
        The run's logger (into ``log.txt``).
    imported : float or None
        :func:`process_age` at the start of ``main``.
    built : float
        Seconds spent reading the hyperparameters (building the model and
        its encoders).

    Example
    -------
    >>> import logging
    >>> log_start_up(logging.getLogger("x"), 5.0, 1.5)
    """
    age = process_age()
    logger.info(
        "Start-up: %s s interpreter and imports, %.2f s hyperparameters "
        "and model; process age %s s",
        "?" if imported is None else f"{imported:.2f}",
        built,
        "?" if age is None else f"{age:.2f}",
    )
