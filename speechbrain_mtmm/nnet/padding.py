"""Padding masks and masked pooling from SpeechBrain relative lengths.

Lengths at every public API are relative (``lens`` in [0, 1], a fraction of
the padded length), as in SpeechBrain; they are turned into boolean masks
here, at the point of use.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch


def lengths_to_mask(lens, max_len):
    """Returns a boolean mask, True on valid (non-padded) positions.

    Every sequence keeps at least one valid position, so attention over it is
    always defined (a masked modality is one zero frame, see
    :class:`speechbrain_mtmm.nnet.masking.RandomModalityMasking`).

    Arguments
    ---------
    lens : torch.Tensor
        Relative lengths, shape ``(batch,)``, values in [0, 1].
    max_len : int
        The padded length.

    Returns
    -------
    torch.Tensor
        Boolean mask of shape ``(batch, max_len)``.

    Example
    -------
    >>> lengths_to_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    """
    abs_lens = torch.round(lens.float() * max_len).clamp(min=1, max=max_len)
    positions = torch.arange(max_len, device=lens.device)
    return positions.unsqueeze(0) < abs_lens.unsqueeze(1)


def masked_mean(x, mask):
    """Mean over time of the valid positions only.

    Arguments
    ---------
    x : torch.Tensor
        Features, shape ``(batch, time, dim)``.
    mask : torch.Tensor
        Boolean mask ``(batch, time)``, True on valid positions.

    Returns
    -------
    torch.Tensor
        Pooled features, shape ``(batch, dim)``.

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> masked_mean(x, torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """
    weights = mask.unsqueeze(-1).to(x.dtype)
    total = (x * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


def zero_padding(x, mask):
    """Sets the padded positions of ``x`` to exactly zero.

    Arguments
    ---------
    x : torch.Tensor
        Features, shape ``(batch, time, dim)``.
    mask : torch.Tensor
        Boolean mask ``(batch, time)``, True on valid positions.

    Returns
    -------
    torch.Tensor
        ``x`` with padded frames zeroed.

    Example
    -------
    >>> zero_padding(torch.ones(1, 3, 1), torch.tensor([[True, False, True]]))
    tensor([[[1.],
             [0.],
             [1.]]])
    """
    return x.masked_fill(~mask.unsqueeze(-1), 0.0)


def masked_max(x, mask):
    """Maximum over time of the valid positions only.

    Arguments
    ---------
    x : torch.Tensor
        Features, shape ``(batch, time, dim)``.
    mask : torch.Tensor
        Boolean mask ``(batch, time)``, True on valid positions (at least
        one per row, as :func:`lengths_to_mask` gives).

    Returns
    -------
    torch.Tensor
        Pooled features, shape ``(batch, dim)``.

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> masked_max(x, torch.tensor([[True, True, False]]))
    tensor([[3.]])
    """
    lowest = torch.finfo(x.dtype).min
    return x.masked_fill(~mask.unsqueeze(-1), lowest).amax(dim=1)
