"""How a recipe batches its splits: fixed batches or SpeechBrain's
``DynamicBatchSampler`` for training (:func:`train_loader_options`),
batches by duration for validation and test (:func:`evaluation_batches`),
and the optimizer steps they make (:func:`plan_training`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math

import torch
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.training.hparams import HparamsError

logger = get_logger(__name__)


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
        raise HparamsError(
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
