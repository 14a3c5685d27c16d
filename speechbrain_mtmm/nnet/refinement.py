"""Per-modality self-attention refinement (Ispas et al., ICMI 2023).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch

from speechbrain_mtmm.nnet.padding import lengths_to_mask


class SelfAttentionRefinement(torch.nn.Module):
    """Self-attention over one modality's encoder features.

    Pre-norm transformer layers (GELU feed-forward, a final LayerNorm)
    that take relative lengths and mask padded frames as keys, so padding
    never changes the valid outputs. The paper uses 32 heads and does not
    state depth or FFN size; they are arguments here (set in YAML).

    PyTorch's own ``TransformerEncoderLayer`` is used rather than
    SpeechBrain's ``TransformerEncoder``: the latter always asks its
    attention for the weights, which rules out the fused
    scaled-dot-product kernels (``tests/test_fusion.py`` checks that they
    run).

    Arguments
    ---------
    d_model : int
        Feature size.
    nhead : int
        Attention heads (paper: 32).
    num_layers : int
        Number of transformer layers.
    d_ffn : int, optional
        Feed-forward size (default ``4 * d_model``).
    dropout : float
        Dropout inside the layers.

    Example
    -------
    >>> refine = SelfAttentionRefinement(d_model=16, nhead=4)
    >>> out = refine(torch.randn(2, 10, 16), torch.tensor([1.0, 0.6]))
    >>> out.shape
    torch.Size([2, 10, 16])
    """

    def __init__(
        self, d_model, nhead=32, num_layers=1, d_ffn=None, dropout=0.1
    ):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward=d_ffn or 4 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer,
            num_layers,
            norm=torch.nn.LayerNorm(d_model),
            enable_nested_tensor=False,
        )

    def forward(self, feats, lens):
        """Refines ``feats``.

        Arguments
        ---------
        feats : torch.Tensor
            ``(batch, time, d_model)``.
        lens : torch.Tensor
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            ``(batch, time, d_model)``; padded frames carry no meaning.
        """
        mask = lengths_to_mask(lens, feats.shape[1])
        return self.encoder(feats, src_key_padding_mask=~mask)
