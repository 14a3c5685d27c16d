"""The model described once: its configuration and its checkpoints."""

import json

import pytest
import torch

from speechbrain_mtmm.model import (
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
    other = MultimodalEmotionSystem(light_config())
    # same frozen encoder (from its "source"), different trained parts
    other.audio_encoder.load_state_dict(trained.audio_encoder.state_dict())
    other.load_trained(tmp_path / "system.ckpt")
    for key, value in trained.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_loading_refuses_a_frozen_encoder_that_differs(tmp_path):
    torch.manual_seed(0)
    MultimodalEmotionSystem(light_config()).save_trained(
        tmp_path / "system.ckpt"
    )
    torch.manual_seed(1)
    other = MultimodalEmotionSystem(light_config())
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
