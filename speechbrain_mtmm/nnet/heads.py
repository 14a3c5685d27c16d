"""Output heads: emotion classes and dimensional (valence/arousal) values.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch


class EmotionHeads(torch.nn.Module):
    """A classifier over the label set and a sigmoid regressor.

    The regressor predicts valence, arousal (and optionally dominance) in
    [0, 1], the paper's rescaling of the 1-5 ratings.

    Arguments
    ---------
    input_size : int
        Size of the fused utterance vector.
    n_classes : int
        Number of emotion classes.
    n_dims : int
        Regression outputs: 2 (valence, arousal) or 3 (+ dominance).
    hidden_size : int
        Size of a hidden layer before each output; 0 for linear heads.
    dropout : float
        Dropout on the input vector.

    Example
    -------
    >>> heads = EmotionHeads(input_size=8, n_classes=4)
    >>> logits, dims = heads(torch.randn(3, 8))
    >>> logits.shape, dims.shape, bool(((dims > 0) & (dims < 1)).all())
    (torch.Size([3, 4]), torch.Size([3, 2]), True)
    """

    def __init__(
        self, input_size, n_classes, n_dims=2, hidden_size=0, dropout=0.1
    ):
        super().__init__()
        if n_dims not in (2, 3):
            raise ValueError("EmotionHeads: n_dims must be 2 or 3")
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = _head(input_size, hidden_size, n_classes)
        self.regressor = _head(input_size, hidden_size, n_dims)

    def forward(self, x):
        """Predicts class logits and dimensional values.

        Arguments
        ---------
        x : torch.Tensor
            ``(batch, input_size)``.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_classes)``.
        dims : torch.Tensor
            ``(batch, n_dims)`` in [0, 1].
        """
        x = self.dropout(x)
        return self.classifier(x), torch.sigmoid(self.regressor(x))


def _head(input_size, hidden_size, output_size):
    if not hidden_size:
        return torch.nn.Linear(input_size, output_size)
    return torch.nn.Sequential(
        torch.nn.Linear(input_size, hidden_size),
        torch.nn.GELU(),
        torch.nn.Linear(hidden_size, output_size),
    )
