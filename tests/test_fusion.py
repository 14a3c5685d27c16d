"""Fusion, refinement and the full model: padding, crossing, gradients."""

import pytest
import torch

from speechbrain_mtmm import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    EmotionHeads,
    MultimodalEmotionModel,
    PooledFusion,
    SelfAttentionRefinement,
)
from speechbrain_mtmm.nnet.builders import build_block

D = 16


def fusion_modules():
    torch.manual_seed(0)
    return {
        "bridge_crossed": BridgeTokenFusion(D, num_tokens=5, nhead=4),
        "bridge_paired": BridgeTokenFusion(D, 5, nhead=4, mode="paired"),
        "bridge_two_layers_ffn": BridgeTokenFusion(
            D, 5, nhead=4, num_layers=2, d_ffn=32
        ),
        "cross_attention": CrossAttentionFusion(D, nhead=4, num_layers=2),
        "pooled_mean": PooledFusion(D, "mean"),
        "pooled_concat": PooledFusion(D, "concat"),
    }


def pad(x, extra):
    """Appends `extra` frames of garbage (not zeros) to every sequence."""
    garbage = 100 * torch.randn(x.shape[0], extra, x.shape[2])
    return torch.cat([x, garbage], dim=1)


def batch():
    torch.manual_seed(1)
    audio = torch.randn(3, 20, D)
    text = torch.randn(3, 7, D)
    audio_len = torch.tensor([20, 13, 4])
    text_len = torch.tensor([5, 7, 2])
    # garbage beyond each utterance's length: it must never leak
    for i in range(3):
        audio[i, audio_len[i] :] = 50.0
        text[i, text_len[i] :] = -50.0
    return audio, audio_len / 20, text, text_len / 7


@pytest.mark.parametrize("name", list(fusion_modules()))
def test_appending_padding_does_not_change_fusion_output(name):
    fusion = fusion_modules()[name].eval()
    audio, a_lens, text, t_lens = batch()
    reference = fusion(audio, a_lens, text, t_lens)
    padded = fusion(
        pad(audio, 9), a_lens * 20 / 29, pad(text, 4), t_lens * 7 / 11
    )
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(fusion_modules()))
def test_utterance_alone_equals_utterance_in_padded_batch(name):
    fusion = fusion_modules()[name].eval()
    audio, a_lens, text, t_lens = batch()
    in_batch = fusion(audio, a_lens, text, t_lens)[2]
    alone = fusion(audio[2:, :4], torch.ones(1), text[2:, :2], torch.ones(1))
    torch.testing.assert_close(alone[0], in_batch, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["bridge_crossed", "bridge_paired"])
def test_gradients_reach_both_bridge_token_sets(name):
    fusion = fusion_modules()[name]
    audio, a_lens, text, t_lens = batch()
    fusion(audio, a_lens, text, t_lens).pow(2).sum().backward()
    for tokens in (fusion.audio_tokens, fusion.text_tokens):
        assert tokens.grad is not None
        assert tokens.grad.abs().sum() > 0


def test_crossed_mode_takes_values_from_the_other_modality():
    torch.manual_seed(2)
    crossed = BridgeTokenFusion(D, 5, nhead=4, mode="crossed").eval()
    paired = BridgeTokenFusion(D, 5, nhead=4, mode="paired").eval()
    paired.load_state_dict(crossed.state_dict())
    x, y = torch.randn(2, 6, D), torch.randn(2, 6, D)
    ones = torch.ones(2)
    # with the same content in both modalities, crossing changes nothing
    torch.testing.assert_close(
        crossed(x, ones, x, ones), paired(x, ones, x, ones)
    )
    # with different content it does
    assert not torch.allclose(
        crossed(x, ones, y, ones), paired(x, ones, y, ones)
    )


def test_crossed_audio_tokens_use_audio_keys_and_text_values():
    torch.manual_seed(3)
    fusion = BridgeTokenFusion(D, 5, nhead=4, mode="crossed").eval()
    audio = torch.randn(1, 6, D, requires_grad=True)
    text = torch.randn(1, 6, D, requires_grad=True)
    q = fusion.audio_tokens.unsqueeze(0)
    layer = fusion.audio_layers[0]
    out = layer(q, audio, text, torch.ones(1, 6, dtype=torch.bool))
    expected, _ = torch.nn.MultiheadAttention.forward(
        layer.attention.att,
        q.transpose(0, 1),
        audio.transpose(0, 1),
        text.transpose(0, 1),
    )
    reference = layer.norm(q + expected.transpose(0, 1))
    torch.testing.assert_close(out, reference)


def test_refinement_ignores_padding():
    torch.manual_seed(4)
    refine = SelfAttentionRefinement(D, nhead=4, num_layers=2, d_ffn=32).eval()
    x = torch.randn(2, 8, D)
    lens = torch.tensor([1.0, 0.5])
    reference = refine(x, lens)
    padded = refine(pad(x, 5), lens * 8 / 13)
    torch.testing.assert_close(
        padded[0, :8], reference[0], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        padded[1, :4], reference[1, :4], atol=1e-5, rtol=1e-5
    )


def build_model(fusion, audio_size=24, text_size=D, refine=True):
    heads = EmotionHeads(fusion.output_size, n_classes=4, n_dims=3)
    return MultimodalEmotionModel(
        fusion=fusion,
        heads=heads,
        d_model=D,
        audio_input_size=audio_size,
        text_input_size=text_size,
        audio_refinement=SelfAttentionRefinement(D, nhead=4)
        if refine
        else None,
        text_refinement=SelfAttentionRefinement(D, nhead=4) if refine else None,
    )


@pytest.mark.parametrize("name", list(fusion_modules()))
def test_model_output_shapes_for_mixed_lengths(name):
    model = build_model(fusion_modules()[name]).eval()
    torch.manual_seed(5)
    out = model(
        torch.randn(3, 31, 24),
        torch.tensor([1.0, 0.3, 0.61]),
        torch.randn(3, 9, D),
        torch.tensor([0.2, 1.0, 0.5]),
    )
    assert out["logits"].shape == (3, 4)
    assert out["dims"].shape == (3, 3)
    assert ((out["dims"] > 0) & (out["dims"] < 1)).all()
    assert out["embedding"].shape == (3, model.fusion.output_size)
    assert isinstance(model.audio_projection, torch.nn.Linear)
    assert isinstance(model.text_projection, torch.nn.Identity)


def test_full_model_is_padding_invariant():
    model = build_model(fusion_modules()["bridge_crossed"]).eval()
    torch.manual_seed(6)
    audio, text = torch.randn(2, 30, 24), torch.randn(2, 8, D)
    a_lens, t_lens = torch.tensor([1.0, 0.5]), torch.tensor([0.75, 1.0])
    reference = model(audio, a_lens, text, t_lens)["logits"]
    padded = model(
        pad(audio, 10), a_lens * 30 / 40, pad(text, 3), t_lens * 8 / 11
    )["logits"]
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=1e-5)


def test_model_without_refinement_skips_it():
    model = build_model(PooledFusion(D), refine=False)
    assert model.audio_refinement is None
    out = model(
        torch.randn(2, 5, 24),
        torch.ones(2),
        torch.randn(2, 3, D),
        torch.ones(2),
    )
    assert out["logits"].shape == (2, 4)


def test_invalid_modes_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        BridgeTokenFusion(D, mode="sideways")
    with pytest.raises(ValueError, match="mode"):
        PooledFusion(D, mode="max")


@pytest.mark.parametrize(
    "block",
    ["refinement", "bridge_crossed", "bridge_paired", "cross_attention"],
)
def test_attention_runs_on_the_fused_scaled_dot_product_kernel(
    block, monkeypatch
):
    """Every attention of refinement and fusion goes through PyTorch's
    scaled_dot_product_attention (one call per attention), not the
    explicit softmax(QK^T)V path that returns attention weights."""
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", counting
    )
    audio, text = torch.randn(2, 9, 16), torch.randn(2, 5, 16)
    lens = torch.tensor([1.0, 0.6])
    if block == "refinement":  # 2 layers
        SelfAttentionRefinement(16, nhead=4, num_layers=2)(audio, lens)
    else:  # one attention per direction or token set
        fusion = build_block("fusion", block, d_model=16, nhead=4, num_tokens=3)
        fusion(audio, lens, text, lens)
    assert len(calls) == 2
