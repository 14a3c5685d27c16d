"""The model described once: its configuration and its checkpoints."""

import json

import pytest
import torch

from speechbrain_mtmm.system import (
    PAPER_CONFIG,
    ModelConfigError,
    MultimodalEmotionSystem,
    check_config,
)


def light_config(audio_freeze="frozen", text_freeze="paper"):
    return {
        **PAPER_CONFIG,
        "d_model": 16,
        "n_heads": 2,
        "refinement_ffn": 32,
        "bridge_tokens": 4,
        "audio": {"source": "fbank", "layers": [-1], "freeze": audio_freeze},
        "text": {"source": "hashing", "layers": [-1], "freeze": text_freeze},
    }


def test_a_checkpoint_leaves_out_frozen_encoders_and_records_them(tmp_path):
    system = MultimodalEmotionSystem(light_config())
    system.save_trained(tmp_path / "system.ckpt")
    saved = torch.load(tmp_path / "system.ckpt", weights_only=True)
    assert not [k for k in saved if k.startswith("audio_encoder.")]
    assert [k for k in saved if k.startswith("text_encoder.")]
    assert [k for k in saved if k.startswith("model.")]
    record = json.loads((tmp_path / "system.frozen.json").read_text())
    assert record == {
        "audio": {
            "source": "fbank",
            "fingerprint": system.audio_encoder.fingerprint(),
        }
    }


def test_a_checkpoint_of_fine_tuned_encoders_holds_every_weight(tmp_path):
    system = MultimodalEmotionSystem(light_config("paper", "trainable"))
    system.save_trained(tmp_path / "system.ckpt")
    saved = torch.load(tmp_path / "system.ckpt", weights_only=True)
    assert saved.keys() == system.state_dict().keys()
    assert not (tmp_path / "system.frozen.json").exists()


def test_loading_restores_the_trained_weights_around_the_frozen_ones(
    tmp_path,
):
    torch.manual_seed(0)
    trained = MultimodalEmotionSystem(light_config())
    trained.save_trained(tmp_path / "system.ckpt")
    torch.manual_seed(1)
    # other trained parts; the frozen encoder rebuilt from its config
    other = MultimodalEmotionSystem(light_config())
    other.load_trained(tmp_path / "system.ckpt")
    for key, value in trained.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_loading_refuses_a_frozen_encoder_that_differs(tmp_path):
    MultimodalEmotionSystem(light_config()).save_trained(
        tmp_path / "system.ckpt"
    )
    other = MultimodalEmotionSystem(light_config())
    with torch.no_grad():
        next(other.audio_encoder.parameters()).add_(1.0)
    with pytest.raises(RuntimeError, match="system.ckpt: the frozen audio"):
        other.load_trained(tmp_path / "system.ckpt")


def test_an_unknown_config_key_is_named():
    with pytest.raises(ModelConfigError, match="model config text: unknown"):
        check_config(
            {
                **PAPER_CONFIG,
                "text": {"source": "x", "layers": [-1], "pooling": "mean"},
            }
        )


def test_encoder_sections_get_their_defaults():
    config = check_config(
        {**PAPER_CONFIG, "audio": {"source": "fbank", "layers": "all"}}
    )
    assert config["audio"] == {
        "source": "fbank",
        "layers": "all",
        "freeze": "paper",
        "light_size": 128,
    }


USER_BLOCKS = '''
import torch


class GatedSum(torch.nn.Module):
    """A fusion of a user's: a gated sum of the mean-pooled modalities."""

    def __init__(self, d_model):
        super().__init__()
        self.output_size = d_model
        self.gate = torch.nn.Linear(2 * d_model, d_model)

    def forward(self, audio, audio_lens, text, text_lens):
        a, t = audio.mean(1), text.mean(1)
        g = torch.sigmoid(self.gate(torch.cat([a, t], -1)))
        return g * a + (1 - g) * t


class MeanHeads(torch.nn.Module):
    """Heads of a user's, taking every argument of the interface."""

    def __init__(self, **sizes):
        super().__init__()
        self.sizes = sizes
        self.out = torch.nn.Linear(
            sizes["input_size"], sizes["n_classes"] + sizes["n_dims"]
        )

    def forward(self, x):
        y = self.out(x)
        n = self.sizes["n_classes"]
        return y[:, :n], torch.sigmoid(y[:, n:])
'''


@pytest.fixture
def user_blocks(tmp_path, monkeypatch):
    """A module of the user's, importable as ``user_blocks``."""
    (tmp_path / "user_blocks.py").write_text(USER_BLOCKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_blocks"


def test_a_block_of_yours_is_built_from_its_import_path(user_blocks):
    config = {
        **light_config(),
        "fusion_type": f"{user_blocks}.GatedSum",
        "heads_type": f"{user_blocks}.MeanHeads",
    }
    system = MultimodalEmotionSystem(config)
    assert type(system.model.fusion).__name__ == "GatedSum"
    # only the arguments its __init__ takes; all of them with **kwargs
    assert system.model.heads.sizes == {
        "input_size": 16,
        "n_classes": 4,
        "n_dims": 2,
        "dropout": 0.1,
    }
    audio = system.encode("audio", torch.randn(2, 8000), torch.ones(2))
    text = system.masked("text", 2)
    out = system(*audio, *text)
    assert out["logits"].shape == (2, 4) and out["dims"].shape == (2, 2)


def test_the_registered_blocks_build_as_before():
    system = MultimodalEmotionSystem(
        {**light_config(), "fusion_type": "bridge_paired"}
    )
    assert system.model.fusion.mode == "paired"
    assert type(system.model.audio_refinement).__name__ == (
        "SelfAttentionRefinement"
    )
    no_refinement = {**light_config(), "refinement": False}
    assert MultimodalEmotionSystem(no_refinement).model.text_refinement is None


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("fusion_type", "bridge", "fusion_type 'bridge' is not one of"),
        ("heads_type", "nowhere.Heads", "heads_type 'nowhere.Heads': cannot"),
        ("refinement_type", "torch.pi", "is not a class"),
    ],
)
def test_a_block_that_cannot_be_built_is_a_one_line_config_error(
    key, value, message
):
    with pytest.raises(ModelConfigError, match=message):
        MultimodalEmotionSystem({**light_config(), key: value})


# ------------------------------------------------- what was trained exists


def weighted(classes, valence, arousal, dominance=0.0, n_dims=3):
    """The light config with these loss weights."""
    weights = {
        "classes": classes,
        "valence": valence,
        "arousal": arousal,
        "dominance": dominance,
    }
    return {**light_config(), "n_dims": n_dims, "loss_weights": weights}


def test_a_zero_loss_weight_leaves_its_output_out_of_the_forward_pass():
    system = MultimodalEmotionSystem(weighted(0.0, 1.0, 0.0, 0.5)).eval()
    audio = system.encode("audio", torch.randn(2, 8000), torch.ones(2))
    text = system.masked("text", 2)
    out = system(*audio, *text)
    full = system.model(*audio, *text)  # every head, trained or not
    assert "logits" not in out
    assert system.dimensions == ["valence", "dominance"]
    torch.testing.assert_close(out["dims"], full["dims"][:, [0, 2]])


def test_with_every_weight_positive_the_forward_pass_has_every_output():
    system = MultimodalEmotionSystem(weighted(1.0, 1.0, 1.0, 1.0)).eval()
    audio = system.encode("audio", torch.randn(2, 8000), torch.ones(2))
    out = system(*audio, *system.masked("text", 2))
    assert out["logits"].shape == (2, 4) and out["dims"].shape == (2, 3)


def test_a_loss_weight_beyond_the_predicted_dimensions_is_refused():
    with pytest.raises(ModelConfigError, match="dominance has a loss weight"):
        check_config(weighted(1.0, 1.0, 1.0, 0.5, n_dims=2))


def test_loss_weights_that_train_nothing_are_refused():
    with pytest.raises(ModelConfigError, match="nothing is trained"):
        check_config(weighted(0.0, 0.0, 0.0))
