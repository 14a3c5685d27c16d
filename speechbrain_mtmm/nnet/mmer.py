"""MMER's fusion (Ghosh et al., Interspeech 2023), beside the bridge tokens.

As MMER's ``MMI_Model`` builds it (``src/mmi_module.py``), each attention
a BERT-style layer (attention, residual + LayerNorm, feed-forward,
residual + LayerNorm; ``CrossAttentionLayer`` of :mod:`.fusion`):

1. text self-attention: ``T = SelfAttn(dropout(text))``;
2. text -> audio: ``X_ta = Attn(q=T, kv=W_a audio)``;
3. audio -> text: ``X_at = Attn(q=W_b audio, kv=T)``;
4. text -> (audio -> text): ``X_tt = Attn(q=T, kv=X_at)``;
5. gate: ``g = sigmoid(W_g [X_tt; X_ta])``, ``F = [X_tt; g * X_ta]``;
6. masked max-pooling: ``a = max_t audio``, ``m = W_m max_l F``;
7. the utterance vector is ``[a; m]`` (``2 * d_model``), which the heads
   and MMER's contrastive losses read.

Unlike MMER's code, padded audio frames and text tokens are masked
everywhere (attention keys and both max-poolings), so padding never
changes an output; MMER's audio side is unpadded only because it runs
with batches of 2. Our own code: no toolkit has this block.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch

from speechbrain_mtmm.nnet.fusion import CrossAttentionLayer
from speechbrain_mtmm.nnet.padding import lengths_to_mask, masked_max


class MMERFusion(torch.nn.Module):
    """MMER's gated cross-modal fusion and max-pooling.

    Arguments
    ---------
    d_model : int
        Feature size of both modalities (MMER: 768).
    nhead : int
        Attention heads (MMER: 12).
    d_ffn : int
        Feed-forward size of every attention layer (MMER: 3072; 0: none).
    dropout : float
        Dropout on the text input and inside the layers (MMER: 0.1).

    Example
    -------
    >>> fusion = MMERFusion(d_model=8, nhead=2, d_ffn=16)
    >>> audio, text = torch.randn(2, 12, 8), torch.randn(2, 5, 8)
    >>> fusion(audio, torch.ones(2), text, torch.tensor([1.0, 0.4])).shape
    torch.Size([2, 16])
    """

    def __init__(self, d_model, nhead=12, d_ffn=0, dropout=0.1):
        super().__init__()
        self.output_size = 2 * d_model
        self.input_dropout = torch.nn.Dropout(dropout)

        def layer():
            """One BERT-style (cross-)attention layer."""
            return CrossAttentionLayer(d_model, nhead, d_ffn, dropout)

        self.text_self = layer()
        self.audio_keys = torch.nn.Linear(d_model, d_model)
        self.audio_queries = torch.nn.Linear(d_model, d_model)
        self.text_to_audio = layer()
        self.audio_to_text = layer()
        self.text_to_fused = layer()
        self.gate = torch.nn.Linear(2 * d_model, d_model)
        self.fused_projection = torch.nn.Linear(2 * d_model, d_model)

    def forward(self, audio, audio_lens, text, text_lens):
        """Fuses the two modalities into ``[max audio; W_m max F]``.

        Arguments
        ---------
        audio : torch.Tensor
            ``(batch, time_a, d_model)``.
        audio_lens : torch.Tensor
            Relative lengths ``(batch,)``.
        text : torch.Tensor
            ``(batch, time_t, d_model)``.
        text_lens : torch.Tensor
            Relative lengths ``(batch,)``.

        Returns
        -------
        torch.Tensor
            ``(batch, 2 * d_model)``.
        """
        audio_valid = lengths_to_mask(audio_lens, audio.shape[1])
        text_valid = lengths_to_mask(text_lens, text.shape[1])
        text = self.input_dropout(text)
        text = self.text_self(text, text, text, text_valid)
        keys = self.audio_keys(audio)
        text_audio = self.text_to_audio(text, keys, keys, audio_valid)
        audio_text = self.audio_to_text(
            self.audio_queries(audio), text, text, text_valid
        )
        text_text = self.text_to_fused(
            text, audio_text, audio_text, audio_valid
        )
        fused = self.gated(text_text, text_audio)
        pooled_audio = masked_max(audio, audio_valid)
        pooled_fused = self.fused_projection(masked_max(fused, text_valid))
        return torch.cat([pooled_audio, pooled_fused], dim=-1)

    def gated(self, text_text, text_audio):
        """``[X_tt; g * X_ta]`` with ``g = sigmoid(W_g [X_tt; X_ta])``.

        Arguments
        ---------
        text_text, text_audio : torch.Tensor
            ``(batch, time_t, d_model)`` each.

        Returns
        -------
        torch.Tensor
            ``(batch, time_t, 2 * d_model)``.
        """
        gate = torch.sigmoid(self.gate(torch.cat([text_text, text_audio], -1)))
        return torch.cat([text_text, gate * text_audio], dim=-1)
