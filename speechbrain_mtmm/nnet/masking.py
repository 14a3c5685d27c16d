"""Random Modality Masking (Ispas et al., ICMI 2023).

Our own module: no library has it. Once per epoch a decision is drawn: with
probability ``p(epoch)`` one modality is masked for the whole epoch (text
with probability 0.6, audio with 0.4). ``p`` starts at 0.8, decays with a
cosine over the run's epochs and is set to 0 once it falls below 0.1.

What masking does, exactly: the masked modality's features are replaced by
a single all-zero frame (relative length 1), so the rest of the model
(projection, refinement, fusion) runs unchanged and attention stays defined.
Its encoder is not run at all that epoch, which freezes it (no gradient
reaches it) and saves its compute. Inference without a transcript feeds the
text side exactly the same zero frame, the input training taught the model
to handle.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math

import numpy as np
import torch

MODALITIES = ("audio", "text")


def masked_modality_features(batch_size, dim, device=None, dtype=None):
    """The stand-in for a masked or missing modality: one zero frame.

    Arguments
    ---------
    batch_size : int
        Number of utterances.
    dim : int
        Feature size of the modality.
    device : torch.device, optional
        Where to create the tensors.
    dtype : torch.dtype, optional
        Feature dtype.

    Returns
    -------
    feats : torch.Tensor
        Zeros of shape ``(batch_size, 1, dim)``.
    lens : torch.Tensor
        Relative lengths, all 1.0, shape ``(batch_size,)``.

    Example
    -------
    >>> feats, lens = masked_modality_features(2, 8)
    >>> feats.shape, lens.tolist()
    (torch.Size([2, 1, 8]), [1.0, 1.0])
    """
    feats = torch.zeros(batch_size, 1, dim, device=device, dtype=dtype)
    return feats, torch.ones(batch_size, device=device)


class RandomModalityMasking:
    """Epoch-level schedule deciding which modality (if any) is masked.

    The decision for an epoch depends only on ``(seed, epoch)``, never on how
    many times it was asked before, so a run resumed from a checkpoint makes
    exactly the decisions of an uninterrupted one.

    ``p(e) = p_start * (1 + cos(pi * (e - 1) / (n_epochs - 1))) / 2`` for
    epochs ``e = 1..n_epochs``, and ``p(e) = 0`` when ``p(e) < p_floor`` or
    ``e > n_epochs``.

    Arguments
    ---------
    n_epochs : int
        Number of training epochs of the run (the cosine spans them).
    p_start : float
        Masking probability at epoch 1 (paper: 0.8).
    p_floor : float
        Below this the probability is set to 0 (paper: 0.1).
    text_prob : float
        Probability that the text (rather than audio) is the masked modality
        when masking fires (paper: 0.6).
    seed : int
        Seed of the per-epoch draws.

    Example
    -------
    >>> rmm = RandomModalityMasking(n_epochs=20, seed=1)
    >>> round(rmm.probability(1), 3), round(rmm.probability(10), 3)
    (0.8, 0.433)
    >>> rmm.probability(20)
    0.0
    >>> again = RandomModalityMasking(n_epochs=20, seed=1)
    >>> rmm.masked_modality(5) == again.masked_modality(5)
    True
    """

    def __init__(
        self, n_epochs, p_start=0.8, p_floor=0.1, text_prob=0.6, seed=1
    ):
        if n_epochs < 1:
            raise ValueError("RandomModalityMasking: n_epochs must be >= 1")
        if not 0 <= p_start <= 1 or not 0 <= text_prob <= 1:
            raise ValueError("RandomModalityMasking: probabilities in [0, 1]")
        self.n_epochs = int(n_epochs)
        self.p_start = float(p_start)
        self.p_floor = float(p_floor)
        self.text_prob = float(text_prob)
        self.seed = int(seed)

    def probability(self, epoch):
        """Probability that a modality is masked during ``epoch`` (1-based).

        Arguments
        ---------
        epoch : int
            The epoch, counted from 1.

        Returns
        -------
        float
        """
        if epoch < 1 or epoch > self.n_epochs:
            return 0.0
        progress = (epoch - 1) / max(self.n_epochs - 1, 1)
        p = self.p_start * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 0.0 if p < self.p_floor else p

    def masked_modality(self, epoch):
        """Which modality is masked during ``epoch``: None, audio or text.

        Arguments
        ---------
        epoch : int
            The epoch, counted from 1.

        Returns
        -------
        str or None
        """
        fire_draw, modality_draw = np.random.default_rng(
            [self.seed, int(epoch)]
        ).random(2)
        if fire_draw >= self.probability(epoch):
            return None
        return "text" if modality_draw < self.text_prob else "audio"

    def mask(self, feats):
        """Replaces a batch of features by the masked stand-in.

        Arguments
        ---------
        feats : torch.Tensor
            Features ``(batch, time, dim)`` of the masked modality.

        Returns
        -------
        feats : torch.Tensor
            Zeros ``(batch, 1, dim)``.
        lens : torch.Tensor
            Relative lengths, all 1.0.
        """
        return masked_modality_features(
            feats.shape[0], feats.shape[-1], feats.device, feats.dtype
        )
