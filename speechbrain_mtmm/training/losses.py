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


class MultiTaskLoss(torch.nn.Module):
    """The paper's loss: ``w_ce*CE + w_v*(1-CCC_v) + w_a*(1-CCC_a)``.

    A weight of zero turns a task off, which gives the single-task variants
    (classes only: ``w_valence = w_arousal = 0``; dimensions only:
    ``w_ce = 0``). The CCC terms are computed over the batch (the paper uses
    batches of 16). Dominance is optional (``w_dominance``).

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

    def forward(self, logits, labels, pred_dims, target_dims):
        """Computes the weighted loss and its parts.

        Arguments
        ---------
        logits : torch.Tensor
            Class scores ``(batch, n_classes)``.
        labels : torch.Tensor
            Class indices ``(batch,)``.
        pred_dims : torch.Tensor
            Predicted dimensions ``(batch, D)`` in the order valence,
            arousal[, dominance].
        target_dims : torch.Tensor
            Targets, same shape as ``pred_dims``.

        Returns
        -------
        dict
            ``loss`` (the weighted sum), ``ce`` and ``ccc_<dimension>`` for
            each predicted dimension.
        """
        parts = {"ce": F.cross_entropy(logits, labels)}
        loss = self.w_ce * parts["ce"]
        n_dims = pred_dims.shape[-1]
        if self.weights["dominance"] > 0 and n_dims < 3:
            raise ValueError(
                "MultiTaskLoss: w_dominance > 0 needs 3 regression outputs"
            )
        per_dim = ccc(pred_dims.float(), target_dims.float())
        for index, name in enumerate(DIMENSIONS[:n_dims]):
            parts[f"ccc_{name}"] = per_dim[index]
            loss = loss + self.weights[name] * (1.0 - per_dim[index])
        parts["loss"] = loss
        return parts
