"""Fusion of audio and text sequences into one utterance vector.

``BridgeTokenFusion`` is the paper's contribution (Ispas et al., ICMI 2023,
after Wang, Ma and Ding, ICASSP 2023); ``CrossAttentionFusion`` is its
"without bridge tokens" ablation; ``PooledFusion`` is the "no fusion"
baseline. All three take both modalities as ``(batch, time, d_model)`` with
relative lengths, mask padded positions, and return ``(batch, output_size)``.
Our own code: SpeechBrain has the attention layers (reused here) but no
multi-modal fusion.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch
from speechbrain.nnet.attention import (
    MultiheadAttention,
    PositionalwiseFeedForward,
)

from speechbrain_mtmm.nnet.padding import (
    lengths_to_mask,
    masked_mean,
    zero_padding,
)


class CrossAttentionLayer(torch.nn.Module):
    """Multi-head attention of queries over keys/values, residual + norm.

    ``out = LayerNorm(q + MHA(q, k, v))``, then optionally
    ``out = LayerNorm(out + FFN(out))``. Padded keys are masked.

    Arguments
    ---------
    d_model : int
        Feature size of queries, keys and values.
    nhead : int
        Attention heads.
    d_ffn : int
        Feed-forward size; 0 means no feed-forward block.
    dropout : float
        Dropout on attention weights and residual branches.

    Example
    -------
    >>> layer = CrossAttentionLayer(8, nhead=2)
    >>> q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    >>> valid = torch.ones(2, 5, dtype=torch.bool)
    >>> layer(q, kv, kv, valid).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, d_model, nhead, d_ffn=0, dropout=0.0):
        super().__init__()
        self.attention = MultiheadAttention(nhead, d_model, dropout=dropout)
        self.norm = torch.nn.LayerNorm(d_model)
        self.dropout = torch.nn.Dropout(dropout)
        self.ffn = None
        if d_ffn:
            self.ffn = PositionalwiseFeedForward(
                d_ffn, input_size=d_model, dropout=dropout
            )
            self.ffn_norm = torch.nn.LayerNorm(d_model)

    def forward(self, query, key, value, key_valid):
        """Attends ``query`` over ``key``/``value``.

        Arguments
        ---------
        query : torch.Tensor
            ``(batch, n_query, d_model)``.
        key : torch.Tensor
            ``(batch, time, d_model)``.
        value : torch.Tensor
            ``(batch, time, d_model)``.
        key_valid : torch.Tensor
            Boolean ``(batch, time)``, True on positions that may be attended.

        Returns
        -------
        torch.Tensor
            ``(batch, n_query, d_model)``.
        """
        attended = self.attention(
            query,
            key,
            value,
            key_padding_mask=~key_valid,
            return_attn_weights=False,
        )
        out = self.norm(query + self.dropout(attended))
        if self.ffn is not None:
            out = self.ffn_norm(out + self.dropout(self.ffn(out)))
        return out


def _stack(d_model, nhead, num_layers, d_ffn, dropout):
    return torch.nn.ModuleList(
        CrossAttentionLayer(d_model, nhead, d_ffn, dropout)
        for _ in range(num_layers)
    )


def _run(layers, query, key, value, key_valid):
    for layer in layers:
        query = layer(query, key, value, key_valid)
    return query


class BridgeTokenFusion(torch.nn.Module):
    """Learnable bridge tokens that gather both modalities by cross-attention.

    Two token sets ``Q_a`` and ``Q_t`` (``num_tokens x d_model`` each) are the
    queries of two cross-attention stacks, one per set (the paper's two
    cross-attention layers are ``num_layers=1`` per set).

    * ``mode="crossed"`` (the paper): ``Q_a`` attends with keys = audio and
      values = text, ``Q_t`` with keys = text and values = audio. Keys and
      values must then have one length: each utterance's shorter sequence is
      zero-padded to its longer one (``N = max(len_audio, len_text)``), so
      position ``i`` pairs audio frame ``i`` with text token ``i``, and
      positions past ``N`` (batch padding) are masked.
    * ``mode="paired"``: keys and values come from the same modality
      (``Q_a`` over audio, ``Q_t`` over text), each with its own mask.

    Output: ``mean(mean_tokens(out_a), mean_tokens(out_t))``, ``(batch,
    d_model)``. Appending batch padding to either modality never changes it.

    Arguments
    ---------
    d_model : int
        Feature size of both modalities and the tokens.
    num_tokens : int
        Bridge tokens per set (paper: 30).
    nhead : int
        Attention heads (paper: 32).
    num_layers : int
        Cross-attention layers per token set.
    mode : str
        ``"crossed"`` or ``"paired"``.
    d_ffn : int
        Feed-forward size after each attention; 0 for none.
    dropout : float
        Dropout in the attention layers.

    Example
    -------
    >>> fusion = BridgeTokenFusion(d_model=16, num_tokens=4, nhead=4)
    >>> audio, text = torch.randn(2, 12, 16), torch.randn(2, 5, 16)
    >>> fusion(audio, torch.tensor([1.0, 0.5]), text, torch.ones(2)).shape
    torch.Size([2, 16])
    """

    MODES = ("crossed", "paired")

    def __init__(
        self,
        d_model,
        num_tokens=30,
        nhead=32,
        num_layers=1,
        mode="crossed",
        d_ffn=0,
        dropout=0.0,
    ):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"BridgeTokenFusion: mode must be in {self.MODES}")
        self.mode = mode
        self.output_size = d_model
        self.audio_tokens = torch.nn.Parameter(
            torch.randn(num_tokens, d_model) * 0.02
        )
        self.text_tokens = torch.nn.Parameter(
            torch.randn(num_tokens, d_model) * 0.02
        )
        self.audio_layers = _stack(d_model, nhead, num_layers, d_ffn, dropout)
        self.text_layers = _stack(d_model, nhead, num_layers, d_ffn, dropout)

    def forward(self, audio, audio_lens, text, text_lens):
        """Fuses the two modalities.

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
            ``(batch, d_model)``.
        """
        batch = audio.shape[0]
        audio_valid = lengths_to_mask(audio_lens, audio.shape[1])
        text_valid = lengths_to_mask(text_lens, text.shape[1])
        if self.mode == "crossed":
            length = max(audio.shape[1], text.shape[1])
            audio, audio_valid = _pad_to(audio, audio_valid, length)
            text, text_valid = _pad_to(text, text_valid, length)
            audio_kv = (audio, text)
            text_kv = (text, audio)
            audio_valid = text_valid = audio_valid | text_valid
        else:
            audio_kv = (audio, audio)
            text_kv = (text, text)
        q_a = self.audio_tokens.unsqueeze(0).expand(batch, -1, -1)
        q_t = self.text_tokens.unsqueeze(0).expand(batch, -1, -1)
        out_a = _run(self.audio_layers, q_a, *audio_kv, audio_valid)
        out_t = _run(self.text_layers, q_t, *text_kv, text_valid)
        return 0.5 * (out_a.mean(dim=1) + out_t.mean(dim=1))


def _pad_to(feats, valid, length):
    """Zeroes the padded frames and pads ``feats``/``valid`` to ``length``."""
    extra = length - feats.shape[1]
    feats = torch.nn.functional.pad(
        zero_padding(feats, valid), (0, 0, 0, extra)
    )
    valid = torch.nn.functional.pad(valid, (0, extra), value=False)
    return feats, valid


class CrossAttentionFusion(torch.nn.Module):
    """Ordinary cross-attention: each modality queries the other.

    The paper's ablation without bridge tokens: audio frames attend over text
    tokens (keys and values = text) and text tokens over audio frames; each
    output is mean-pooled over its own valid positions and the two means are
    averaged.

    Arguments
    ---------
    d_model : int
        Feature size of both modalities.
    nhead : int
        Attention heads.
    num_layers : int
        Cross-attention layers per direction.
    d_ffn : int
        Feed-forward size after each attention; 0 for none.
    dropout : float
        Dropout in the attention layers.

    Example
    -------
    >>> fusion = CrossAttentionFusion(d_model=16, nhead=4)
    >>> audio, text = torch.randn(2, 12, 16), torch.randn(2, 5, 16)
    >>> fusion(audio, torch.ones(2), text, torch.tensor([1.0, 0.4])).shape
    torch.Size([2, 16])
    """

    def __init__(self, d_model, nhead=32, num_layers=1, d_ffn=0, dropout=0.0):
        super().__init__()
        self.output_size = d_model
        self.audio_layers = _stack(d_model, nhead, num_layers, d_ffn, dropout)
        self.text_layers = _stack(d_model, nhead, num_layers, d_ffn, dropout)

    def forward(self, audio, audio_lens, text, text_lens):
        """Fuses the two modalities.

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
            ``(batch, d_model)``.
        """
        audio_valid = lengths_to_mask(audio_lens, audio.shape[1])
        text_valid = lengths_to_mask(text_lens, text.shape[1])
        out_a = _run(self.audio_layers, audio, text, text, text_valid)
        out_t = _run(self.text_layers, text, audio, audio, audio_valid)
        return 0.5 * (
            masked_mean(out_a, audio_valid) + masked_mean(out_t, text_valid)
        )


class PooledFusion(torch.nn.Module):
    """No fusion: mean-pool each modality, then average or concatenate.

    Arguments
    ---------
    d_model : int
        Feature size of both modalities.
    mode : str
        ``"mean"`` (output ``d_model``) or ``"concat"`` (``2 * d_model``).

    Example
    -------
    >>> fusion = PooledFusion(d_model=4, mode="concat")
    >>> fusion(torch.ones(1, 3, 4), torch.ones(1), torch.zeros(1, 2, 4),
    ...        torch.ones(1))
    tensor([[1., 1., 1., 1., 0., 0., 0., 0.]])
    """

    MODES = ("mean", "concat")

    def __init__(self, d_model, mode="mean"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"PooledFusion: mode must be in {self.MODES}")
        self.mode = mode
        self.output_size = d_model if mode == "mean" else 2 * d_model

    def forward(self, audio, audio_lens, text, text_lens):
        """Pools and combines the two modalities.

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
            ``(batch, output_size)``.
        """
        pooled_a = masked_mean(
            audio, lengths_to_mask(audio_lens, audio.shape[1])
        )
        pooled_t = masked_mean(text, lengths_to_mask(text_lens, text.shape[1]))
        if self.mode == "mean":
            return 0.5 * (pooled_a + pooled_t)
        return torch.cat([pooled_a, pooled_t], dim=-1)
