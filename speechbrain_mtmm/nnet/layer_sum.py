"""A learnable weighted sum over the hidden layers of a frozen encoder.

When the model uses several hidden states of an encoder (computed on the
fly or read from the feature cache), it combines them with one softmax
weight per layer, learned with the rest of the model (the SUPERB recipe for
speech SSL models). The paper uses one layer (the last), which is a sum
over a single layer here and has no parameter.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch


class WeightedLayerSum(torch.nn.Module):
    """Softmax-weighted sum over the layer axis of stacked hidden states.

    Weights start equal (zeros before the softmax). With ``num_layers=1``
    the module has no parameter and returns the single layer unchanged.

    Arguments
    ---------
    num_layers : int
        Number of stacked layers expected on the layer axis.

    Example
    -------
    >>> layer_sum = WeightedLayerSum(num_layers=3)
    >>> feats = torch.stack([torch.full((2, 5, 4), v) for v in (0., 3., 6.)],
    ...                     dim=2)
    >>> feats.shape
    torch.Size([2, 5, 3, 4])
    >>> layer_sum(feats)[0, 0].tolist()
    [3.0, 3.0, 3.0, 3.0]
    >>> layer_sum.layer_weights().tolist()
    [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]
    >>> len(list(WeightedLayerSum(1).parameters()))
    0
    """

    def __init__(self, num_layers):
        super().__init__()
        if num_layers < 1:
            raise ValueError("WeightedLayerSum: num_layers must be >= 1")
        self.num_layers = int(num_layers)
        self.logits = None
        if self.num_layers > 1:
            self.logits = torch.nn.Parameter(torch.zeros(self.num_layers))

    def layer_weights(self):
        """The current weight of every layer (they sum to 1).

        Returns
        -------
        torch.Tensor
            ``(num_layers,)``.
        """
        if self.logits is None:
            return torch.ones(1)
        return torch.softmax(self.logits.float(), dim=0)

    def forward(self, feats):
        """Sums the layers of ``feats`` with the learned weights.

        Arguments
        ---------
        feats : torch.Tensor
            ``(batch, time, num_layers, dim)``.

        Returns
        -------
        torch.Tensor
            ``(batch, time, dim)``, in the dtype of ``feats``.
        """
        if feats.shape[-2] != self.num_layers:
            raise ValueError(
                f"WeightedLayerSum: expected {self.num_layers} layers on "
                f"axis -2, got shape {tuple(feats.shape)}"
            )
        if self.logits is None:
            return feats[..., 0, :]
        weights = self.layer_weights().to(feats.dtype)
        return torch.einsum("btld,l->btd", feats, weights)
