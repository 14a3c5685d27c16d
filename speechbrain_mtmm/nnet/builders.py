"""Builders that let a YAML file pick a variant with one key.

``fusion_type: cross_attention`` or ``refinement: False`` on the command
line switches an ablation row without editing the model section.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from speechbrain_mtmm.nnet.fusion import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    PooledFusion,
)
from speechbrain_mtmm.nnet.mmer import MMERFusion
from speechbrain_mtmm.nnet.refinement import SelfAttentionRefinement

FUSION_TYPES = (
    "bridge_crossed",
    "bridge_paired",
    "cross_attention",
    "pooled_mean",
    "pooled_concat",
    "mmer",
)


def build_fusion(
    fusion_type,
    d_model,
    nhead=32,
    num_tokens=30,
    num_layers=1,
    d_ffn=0,
    dropout=0.0,
):
    """Builds one of the paper's fusion variants.

    Arguments
    ---------
    fusion_type : str
        ``bridge_crossed`` (the paper), ``bridge_paired``,
        ``cross_attention`` (ablation without bridge tokens),
        ``pooled_mean`` or ``pooled_concat`` (no fusion), ``mmer``
        (MMER's gated fusion, :class:`~speechbrain_mtmm.nnet.mmer.MMERFusion`).
    d_model : int
        Feature size of both modalities.
    nhead : int
        Attention heads.
    num_tokens : int
        Bridge tokens per set (bridge variants only).
    num_layers : int
        Cross-attention layers per token set / direction.
    d_ffn : int
        Feed-forward size after each attention (0: none).
    dropout : float
        Attention dropout.

    Returns
    -------
    torch.nn.Module
        The fusion module; its ``output_size`` sizes the heads.

    Example
    -------
    >>> build_fusion("cross_attention", d_model=8, nhead=2).output_size
    8
    >>> build_fusion("pooled_concat", d_model=8).output_size
    16
    """
    if fusion_type.startswith("bridge_"):
        return BridgeTokenFusion(
            d_model,
            num_tokens=num_tokens,
            nhead=nhead,
            num_layers=num_layers,
            mode=fusion_type[len("bridge_") :],
            d_ffn=d_ffn,
            dropout=dropout,
        )
    if fusion_type == "cross_attention":
        return CrossAttentionFusion(d_model, nhead, num_layers, d_ffn, dropout)
    if fusion_type.startswith("pooled_"):
        return PooledFusion(d_model, mode=fusion_type[len("pooled_") :])
    if fusion_type == "mmer":
        return MMERFusion(d_model, nhead, d_ffn, dropout)
    raise ValueError(
        f"fusion_type '{fusion_type}' is not one of {', '.join(FUSION_TYPES)}"
    )


def build_refinement(
    enabled, d_model, nhead=32, num_layers=1, d_ffn=None, dropout=0.1
):
    """Builds a self-attention refinement module, or None when disabled.

    Arguments
    ---------
    enabled : bool
        False gives None (the "no refinement" ablation row).
    d_model : int
        Feature size.
    nhead : int
        Attention heads.
    num_layers : int
        Transformer layers.
    d_ffn : int, optional
        Feed-forward size (default ``4 * d_model``).
    dropout : float
        Dropout inside the layers.

    Returns
    -------
    SelfAttentionRefinement or None

    Example
    -------
    >>> build_refinement(False, d_model=8) is None
    True
    >>> type(build_refinement(True, d_model=8, nhead=2)).__name__
    'SelfAttentionRefinement'
    """
    if not enabled:
        return None
    return SelfAttentionRefinement(d_model, nhead, num_layers, d_ffn, dropout)
