"""Learning rates: one per module group, and how they change over training.

Fine-tuning large speech and text encoders with the rate of a freshly
initialised fusion model is what users question first. Here each encoder's
trainable parameters and the rest of the model form named parameter
groups of one optimizer (``audio_encoder`` at ``lr_audio_encoder``,
``text_encoder`` at ``lr_text_encoder``, ``model`` at ``lr``; each encoder
rate defaults to ``lr_encoders``, which defaults to ``lr``), and
:class:`LearningRateSchedule` changes them all over training with
SpeechBrain's schedulers:

* ``none``: constant rates (the paper: Adam at 3e-5 everywhere);
* ``newbob``: ``NewBobScheduler`` per group, driven by the validation
  score only (it anneals when ``1 - score`` stops improving), as
  SpeechBrain's own IEMOCAP recipe does;
* ``warmup_linear``: ``LinearWarmupScheduler`` per group, per optimizer
  step: a linear rise over the first ``warmup_fraction`` of the steps,
  then a linear decay to 0.

The schedule is a checkpoint recoverable, so a resumed run continues with
the rates it had. SpeechBrain's schedulers drive one optimizer or one
group each; this class is the small piece that holds one per group.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch
from speechbrain.nnet.schedulers import (
    LinearWarmupScheduler,
    NewBobScheduler,
    update_learning_rate,
)
from speechbrain.utils import checkpoints

SCHEDULES = ("none", "newbob", "warmup_linear")
ENCODER_MODULES = ("audio_encoder", "text_encoder")
#: the parameter groups, in the optimizer's order
GROUP_NAMES = ("model", *ENCODER_MODULES)
#: group name -> the YAML key of its rate (also its name in train_log)
RATE_KEYS = {
    "model": "lr",
    "audio_encoder": "lr_audio_encoder",
    "text_encoder": "lr_text_encoder",
}


def group_rates(
    lr, lr_encoders=None, lr_audio_encoder=None, lr_text_encoder=None
):
    """The rate of each parameter group: each encoder's own rate, else
    ``lr_encoders``, else ``lr`` (the recipes' YAML says the same with
    ``!ref``; None here falls through as well, so ``--lr_encoders=null``
    still means ``lr``).

    Arguments
    ---------
    lr : float
        Rate of the model group (everything but the encoders).
    lr_encoders : float, optional
        Rate of both encoders (None: ``lr``).
    lr_audio_encoder : float, optional
        Rate of the audio encoder (None: ``lr_encoders``).
    lr_text_encoder : float, optional
        Rate of the text encoder (None: ``lr_encoders``).

    Returns
    -------
    dict
        Group name (:data:`GROUP_NAMES`) -> float rate.

    Raises
    ------
    ValueError
        For a rate that is not a number, naming its key.

    Example
    -------
    >>> group_rates(1e-3, lr_encoders=1e-4, lr_text_encoder=1e-5)
    {'model': 0.001, 'audio_encoder': 0.0001, 'text_encoder': 1e-05}
    """
    given = {
        "lr": lr,
        "lr_encoders": lr_encoders,
        "lr_audio_encoder": lr_audio_encoder,
        "lr_text_encoder": lr_text_encoder,
    }
    for key, rate in given.items():
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float))
        ):
            raise ValueError(
                f"{key} must be a number (a learning rate), got {rate!r}"
            )
    encoders = lr if lr_encoders is None else lr_encoders
    own = {"audio_encoder": lr_audio_encoder, "text_encoder": lr_text_encoder}
    rates = {"model": lr}
    for name, rate in own.items():
        rates[name] = encoders if rate is None else rate
    return {name: float(rate) for name, rate in rates.items()}


def parameter_groups(
    modules,
    lr,
    lr_encoders=None,
    lr_audio_encoder=None,
    lr_text_encoder=None,
):
    """The trainable parameters of a ``Brain``'s modules as named
    optimizer groups, one per encoder and one for the rest.

    Parameters that do not require gradients when this is called (a
    frozen encoder, the layers the ``paper`` freeze policy keeps) get no
    group: an encoder with nothing to train has no group and no rate.
    Random Modality Masking freezes an encoder per epoch later, after the
    optimizer is built, and so keeps its group.

    Arguments
    ---------
    modules : dict or torch.nn.ModuleDict
        Name -> module; ``audio_encoder`` and ``text_encoder`` form their
        own groups, everything else the ``model`` group.
    lr : float
        Rate of the model group.
    lr_encoders : float, optional
        Rate of both encoder groups (None: ``lr``).
    lr_audio_encoder : float, optional
        Rate of the audio encoder group (None: ``lr_encoders``).
    lr_text_encoder : float, optional
        Rate of the text encoder group (None: ``lr_encoders``).

    Returns
    -------
    list of dict
        ``{"name", "params", "lr"}`` per non-empty group, in the order of
        :data:`GROUP_NAMES`.

    Example
    -------
    >>> modules = {"audio_encoder": torch.nn.Linear(2, 2),
    ...            "text_encoder": torch.nn.Linear(2, 2).requires_grad_(False),
    ...            "model": torch.nn.Linear(2, 3)}
    >>> groups = parameter_groups(modules, lr=1e-3, lr_encoders=1e-5)
    >>> [(g["name"], len(g["params"]), g["lr"]) for g in groups]
    [('model', 2, 0.001), ('audio_encoder', 2, 1e-05)]
    """
    rates = group_rates(lr, lr_encoders, lr_audio_encoder, lr_text_encoder)
    params = {name: [] for name in GROUP_NAMES}
    for name, module in modules.items():
        group = name if name in ENCODER_MODULES else "model"
        params[group] += [p for p in module.parameters() if p.requires_grad]
    return [
        {"name": name, "params": params[name], "lr": rates[name]}
        for name in GROUP_NAMES
        if params[name]
    ]


@checkpoints.register_checkpoint_hooks
class LearningRateSchedule:
    """How the rates of the parameter groups change (module docstring).

    Arguments
    ---------
    kind : str
        ``"none"``, ``"newbob"`` or ``"warmup_linear"``.
    annealing_factor : float
        NewBob: the rate is multiplied by this when the validation score
        stops improving.
    improvement_threshold : float
        NewBob: the relative improvement of ``1 - score`` below which it
        anneals.
    patience : int
        NewBob: how many such epochs it waits first.
    warmup_fraction : float
        warmup_linear: the fraction of all optimizer steps spent rising.

    Example
    -------
    >>> model = torch.nn.Linear(2, 2)
    >>> optimizer = torch.optim.Adam(
    ...     parameter_groups({"model": model}, lr=1.0))
    >>> schedule = LearningRateSchedule("newbob", annealing_factor=0.5)
    >>> schedule.attach(optimizer, total_steps=10)
    >>> schedule.validation_end(optimizer, score=0.5)
    >>> schedule.validation_end(optimizer, score=0.4)  # worse: anneal
    >>> schedule.rates(optimizer)
    {'lr': 0.5}
    """

    def __init__(
        self,
        kind="none",
        annealing_factor=0.5,
        improvement_threshold=0.0025,
        patience=0,
        warmup_fraction=0.1,
    ):
        if kind not in SCHEDULES:
            raise ValueError(
                f"lr_scheduler must be one of {SCHEDULES}, got {kind!r}"
            )
        self.kind = kind
        self.annealing_factor = annealing_factor
        self.improvement_threshold = improvement_threshold
        self.patience = patience
        self.warmup_fraction = warmup_fraction
        self.schedulers = []

    def attach(self, optimizer, total_steps):
        """Makes one scheduler per parameter group of ``optimizer``.

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            With the groups of :func:`parameter_groups`.
        total_steps : int
            Optimizer steps of the whole training (warmup_linear).
        """
        self.schedulers = []
        for group in optimizer.param_groups:
            lr = group["lr"]
            if self.kind == "newbob":
                scheduler = NewBobScheduler(
                    lr,
                    annealing_factor=self.annealing_factor,
                    improvement_threshold=self.improvement_threshold,
                    patient=self.patience,
                )
            elif self.kind == "warmup_linear":
                warmup = round(self.warmup_fraction * total_steps)
                scheduler = LinearWarmupScheduler(lr, warmup, total_steps)
                group["lr"] = scheduler.calculate_lr(0)
            else:
                scheduler = None
            self.schedulers.append(scheduler)

    def step_end(self, optimizer):
        """After an optimizer step (warmup_linear changes the rates).

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer.
        """
        if self.kind != "warmup_linear":
            return
        for index, scheduler in enumerate(self.schedulers):
            scheduler.current_step += 1
            rate = scheduler.calculate_lr(scheduler.current_step)
            optimizer.param_groups[index]["lr"] = rate

    def validation_end(self, optimizer, score):
        """After a validation stage (newbob changes the rates).

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer.
        score : float
            The validation selection score (higher is better).
        """
        if self.kind != "newbob":
            return
        for index, scheduler in enumerate(self.schedulers):
            _, rate = scheduler(1.0 - float(score))
            update_learning_rate(optimizer, rate, param_group=[index])

    def rates(self, optimizer):
        """The current rate of each group, named as the YAML keys.

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
            The optimizer.

        Returns
        -------
        dict
            The YAML key of each group's rate (:data:`RATE_KEYS`: ``lr``,
            ``lr_audio_encoder``, ``lr_text_encoder``) -> its rate now.
        """
        return {
            RATE_KEYS.get(group.get("name"), f"lr_{index}"): group["lr"]
            for index, group in enumerate(optimizer.param_groups)
        }

    @checkpoints.mark_as_saver
    def save(self, path):
        """Saves each scheduler's state."""
        states = []
        for scheduler in self.schedulers:
            if isinstance(scheduler, NewBobScheduler):
                states.append(
                    {
                        "value": scheduler.hyperparam_value,
                        "metrics": list(scheduler.metric_values),
                        "patience": scheduler.current_patient,
                    }
                )
            elif isinstance(scheduler, LinearWarmupScheduler):
                states.append({"step": scheduler.current_step})
            else:
                states.append({})
        torch.save({"kind": self.kind, "states": states}, path)

    @checkpoints.mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores each scheduler's state (the rates themselves come back
        with the optimizer's state)."""
        del end_of_epoch
        data = torch.load(path, weights_only=True)
        if data["kind"] != self.kind or len(data["states"]) != len(
            self.schedulers
        ):
            raise ValueError(
                f"{path}: saved for lr_scheduler {data['kind']!r} with "
                f"{len(data['states'])} groups; this run has {self.kind!r} "
                f"with {len(self.schedulers)}"
            )
        for scheduler, state in zip(self.schedulers, data["states"]):
            if isinstance(scheduler, NewBobScheduler):
                scheduler.hyperparam_value = state["value"]
                scheduler.metric_values = list(state["metrics"])
                scheduler.current_patient = state["patience"]
            elif isinstance(scheduler, LinearWarmupScheduler):
                scheduler.current_step = state["step"]
