"""The paper's chain: projection -> refinement -> fusion -> heads.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch


class MultimodalEmotionModel(torch.nn.Module):
    """Maps encoder features of both modalities to classes and dimensions.

    Encoders are not part of this module (so cached features can feed it
    directly); it receives their outputs. Each modality is projected to
    ``d_model`` when the encoder's size differs (sizes come from the loaded
    encoder configs), refined by its own self-attention module (optional),
    fused, and passed to the heads.

    Arguments
    ---------
    fusion : torch.nn.Module
        ``BridgeTokenFusion``, ``CrossAttentionFusion`` or ``PooledFusion``.
    heads : torch.nn.Module
        ``EmotionHeads`` whose ``input_size`` is ``fusion.output_size``.
    d_model : int
        Width of refinement and fusion.
    audio_input_size : int, optional
        Audio encoder output size (default ``d_model``, no projection).
    text_input_size : int, optional
        Text encoder output size (default ``d_model``, no projection).
    audio_refinement : torch.nn.Module, optional
        Self-attention refinement of the audio sequence (None: skipped).
    text_refinement : torch.nn.Module, optional
        Self-attention refinement of the text sequence (None: skipped).

    Example
    -------
    >>> from speechbrain_mtmm.nnet.fusion import BridgeTokenFusion
    >>> from speechbrain_mtmm.nnet.heads import EmotionHeads
    >>> from speechbrain_mtmm.nnet.refinement import SelfAttentionRefinement
    >>> model = MultimodalEmotionModel(
    ...     fusion=BridgeTokenFusion(16, num_tokens=4, nhead=4),
    ...     heads=EmotionHeads(16, n_classes=4),
    ...     d_model=16,
    ...     audio_input_size=24,
    ...     audio_refinement=SelfAttentionRefinement(16, nhead=4),
    ...     text_refinement=SelfAttentionRefinement(16, nhead=4),
    ... )
    >>> out = model(torch.randn(2, 50, 24), torch.tensor([1.0, 0.7]),
    ...             torch.randn(2, 9, 16), torch.tensor([0.5, 1.0]))
    >>> out["logits"].shape, out["dims"].shape, out["embedding"].shape
    (torch.Size([2, 4]), torch.Size([2, 2]), torch.Size([2, 16]))
    """

    def __init__(
        self,
        fusion,
        heads,
        d_model,
        audio_input_size=None,
        text_input_size=None,
        audio_refinement=None,
        text_refinement=None,
    ):
        super().__init__()
        self.audio_projection = _projection(audio_input_size, d_model)
        self.text_projection = _projection(text_input_size, d_model)
        self.audio_refinement = audio_refinement
        self.text_refinement = text_refinement
        self.fusion = fusion
        self.heads = heads

    def forward(self, audio_feats, audio_lens, text_feats, text_lens):
        """Runs the chain.

        Arguments
        ---------
        audio_feats : torch.Tensor
            ``(batch, time_a, audio_input_size)``.
        audio_lens : torch.Tensor
            Relative lengths ``(batch,)``.
        text_feats : torch.Tensor
            ``(batch, time_t, text_input_size)``.
        text_lens : torch.Tensor
            Relative lengths ``(batch,)``.

        Returns
        -------
        dict
            ``logits (batch, n_classes)``, ``dims (batch, n_dims)`` in [0, 1]
            and the fused ``embedding (batch, fusion.output_size)``.
        """
        audio = self.audio_projection(audio_feats)
        text = self.text_projection(text_feats)
        if self.audio_refinement is not None:
            audio = self.audio_refinement(audio, audio_lens)
        if self.text_refinement is not None:
            text = self.text_refinement(text, text_lens)
        embedding = self.fusion(audio, audio_lens, text, text_lens)
        logits, dims = self.heads(embedding)
        return {"logits": logits, "dims": dims, "embedding": embedding}


def _projection(input_size, d_model):
    if input_size is None or input_size == d_model:
        return torch.nn.Identity()
    return torch.nn.Linear(input_size, d_model)
