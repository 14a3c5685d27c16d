"""Concordance correlation coefficient and the paper's multi-task loss.

Written here because neither SpeechBrain nor torch has a differentiable,
batch-level CCC with a defined value on constant inputs.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch
import torch.nn.functional as F

from speechbrain_mtmm.run_folder import DIMENSIONS


def ccc(predictions, targets, eps=1e-8):
    """Concordance correlation coefficient, differentiable.

    ``CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``

    Moments are population moments (1/N), as in audmetric and the
    MSP-Podcast baseline (torchmetrics uses 1/(N-1), which gives slightly
    different values on small batches). Where the denominator is zero (a
    single item, or both inputs constant and equal) the value is defined as
    0 (no measurable concordance), never NaN.

    Arguments
    ---------
    predictions : torch.Tensor
        Shape ``(N,)`` or ``(N, D)``.
    targets : torch.Tensor
        Same shape as ``predictions``.
    eps : float
        Added to the denominator to keep the value and its gradient finite.

    Returns
    -------
    torch.Tensor
        A scalar for 1-D inputs, else one value per column ``(D,)``.

    Example
    -------
    >>> y = torch.tensor([0.1, 0.4, 0.5, 0.9])
    >>> round(ccc(y, y).item(), 4)
    1.0
    >>> round(ccc(y + 0.1, y).item(), 4)
    0.9424
    >>> ccc(torch.full((4,), 0.5), y)
    tensor(0.)
    """
    if predictions.shape != targets.shape:
        raise ValueError(
            f"ccc: predictions {tuple(predictions.shape)} and targets "
            f"{tuple(targets.shape)} differ in shape"
        )
    mean_x = predictions.mean(dim=0)
    mean_y = targets.mean(dim=0)
    dx = predictions - mean_x
    dy = targets - mean_y
    cov = (dx * dy).mean(dim=0)
    var_x = (dx * dx).mean(dim=0)
    var_y = (dy * dy).mean(dim=0)
    denominator = var_x + var_y + (mean_x - mean_y) ** 2
    value = 2.0 * cov / (denominator + eps)
    return torch.where(denominator > 0, value, torch.zeros_like(value))


def masked_ccc(predictions, targets):
    """CCC per column over the rows whose target is a number.

    A target that is NaN is not rated (an MSP-Podcast utterance without a
    dimension, a CSV row left empty) and is left out of its column; a
    column with no rated row gives 0.

    Arguments
    ---------
    predictions : torch.Tensor
        ``(N, D)``.
    targets : torch.Tensor
        ``(N, D)``, NaN where not rated.

    Returns
    -------
    torch.Tensor
        ``(D,)``.

    Example
    -------
    >>> y = torch.tensor([[0.1, 0.2], [0.4, float("nan")], [0.9, 0.7]])
    >>> masked_ccc(y.nan_to_num(0.5), y).round(decimals=4).tolist()
    [1.0, 1.0]
    """
    rated = ~torch.isnan(targets)
    if bool(rated.all()):
        return ccc(predictions, targets)
    return torch.stack(
        [
            ccc(predictions[rated[:, i], i], targets[rated[:, i], i])
            if bool(rated[:, i].any())
            else predictions.new_zeros(())
            for i in range(targets.shape[1])
        ]
    )


def balanced_class_weights(counts):
    """Class weights ``N / (C * n_c)`` from the training counts.

    As the MSP-Podcast challenge baseline weights its cross-entropy: a
    class with half the average count weighs 2.

    Arguments
    ---------
    counts : sequence of int
        Training utterances per class, in the model's class order.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> balanced_class_weights([30, 10, 20])
    tensor([0.6667, 2.0000, 1.0000])
    """
    counts = torch.tensor(counts, dtype=torch.float)
    if bool((counts <= 0).any()):
        raise ValueError("balanced_class_weights: a class has no example")
    return counts.sum() / (len(counts) * counts)


class MultiTaskLoss(torch.nn.Module):
    """The paper's loss: ``w_ce*CE + w_v*(1-CCC_v) + w_a*(1-CCC_a)``.

    A weight of zero turns a task off, which gives the single-task variants
    (classes only: ``w_valence = w_arousal = 0``; dimensions only:
    ``w_ce = 0``). The CCC terms are computed over the batch (the paper uses
    batches of 16). Dominance is optional (``w_dominance``).

    Utterances rated for the dimensions only (label index -100) are left
    out of the cross-entropy, those without a rating (NaN targets) out of
    the CCC of that dimension. ``class_weights`` (set after construction,
    from the training split: :func:`balanced_class_weights`) weights the
    cross-entropy per class.

    Arguments
    ---------
    w_ce : float
        Weight of the cross-entropy over emotion classes.
    w_valence : float
        Weight of ``1 - CCC`` on valence.
    w_arousal : float
        Weight of ``1 - CCC`` on arousal.
    w_dominance : float
        Weight of ``1 - CCC`` on dominance (needs a third regression output).

    Example
    -------
    >>> loss_fn = MultiTaskLoss(0.33, 0.33, 0.33)
    >>> logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    >>> labels = torch.tensor([0, 1])
    >>> dims = torch.tensor([[0.2, 0.8], [0.7, 0.1]])
    >>> out = loss_fn(logits, labels, dims, dims)
    >>> round(out["loss"].item(), 4), round(out["ccc_valence"].item(), 4)
    (0.006, 1.0)
    """

    def __init__(
        self, w_ce=0.33, w_valence=0.33, w_arousal=0.33, w_dominance=0
    ):
        super().__init__()
        self.weights = {
            "valence": float(w_valence),
            "arousal": float(w_arousal),
            "dominance": float(w_dominance),
        }
        self.w_ce = float(w_ce)
        if self.w_ce < 0 or min(self.weights.values()) < 0:
            raise ValueError("MultiTaskLoss: weights must be >= 0")
        if self.w_ce + sum(self.weights.values()) == 0:
            raise ValueError("MultiTaskLoss: at least one weight must be > 0")
        self.class_weights = None

    def forward(self, logits, labels, pred_dims, target_dims):
        """Computes the weighted loss and its parts.

        Arguments
        ---------
        logits : torch.Tensor
            Class scores ``(batch, n_classes)``.
        labels : torch.Tensor
            Class indices ``(batch,)``; -100 for no class.
        pred_dims : torch.Tensor
            Predicted dimensions ``(batch, D)`` in the order valence,
            arousal[, dominance].
        target_dims : torch.Tensor
            Targets, same shape as ``pred_dims``; NaN where not rated.

        Returns
        -------
        dict
            ``loss`` (the weighted sum), ``ce`` and ``ccc_<dimension>`` for
            each predicted dimension.
        """
        weight = self.class_weights
        if weight is not None:
            weight = weight.to(logits.device, logits.dtype)
        if bool((labels >= 0).any()):
            ce = F.cross_entropy(logits, labels, weight=weight)
        else:  # a batch rated for the dimensions only
            ce = logits.sum() * 0.0
        parts = {"ce": ce}
        loss = self.w_ce * parts["ce"]
        n_dims = pred_dims.shape[-1]
        if self.weights["dominance"] > 0 and n_dims < 3:
            raise ValueError(
                "MultiTaskLoss: w_dominance > 0 needs 3 regression outputs"
            )
        per_dim = masked_ccc(pred_dims.float(), target_dims.float())
        for index, name in enumerate(DIMENSIONS[:n_dims]):
            parts[f"ccc_{name}"] = per_dim[index]
            loss = loss + self.weights[name] * (1.0 - per_dim[index])
        parts["loss"] = loss
        return parts


class NonFiniteLossError(ValueError):
    """A loss that is not finite; the message names the batch."""


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
    speechbrain_mtmm.training.losses.NonFiniteLossError: non-finite loss ...
    """
    if not torch.isfinite(parts["loss"]):
        raise NonFiniteLossError(
            f"non-finite loss {parts} in the batch of {ids}: check these "
            "utterances' audio, transcripts and labels"
        )
