"""Whisper's encoder as an audio encoder (speechbrain_mtmm.encoders.whisper).

A tiny random Whisper is written to a temp folder (nothing downloaded).
The references are transformers' own: ``WhisperFeatureExtractor`` for the
log-mel and ``WhisperModel``'s encoder on its features for the frames.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from transformers import WhisperFeatureExtractor, WhisperModel

from speechbrain_mtmm.encoders import (
    EncoderError,
    HFAudioEncoder,
    WhisperAudioEncoder,
    build_encoder,
)
from speechbrain_mtmm.inference.predict import load_recognizer
from speechbrain_mtmm.nnet import WeightedLayerSum
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_hubert,
    build_tiny_whisper,
    build_tiny_whisper_encoder,
)

RATE = 16000
WINDOW = 30 * RATE


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny random Whisper (WhisperModel + feature extractor)."""
    return build_tiny_whisper_encoder(tmp_path_factory.mktemp("whisper") / "w")


@pytest.fixture(scope="module")
def encoder(folder):
    """The tiny Whisper as a frozen audio encoder, in eval mode."""
    return build_encoder("audio", folder, freeze="frozen").eval()


@pytest.fixture(scope="module")
def reference(folder):
    """transformers' feature extractor and encoder of the same folder."""
    model = WhisperModel.from_pretrained(folder).encoder.eval()
    return WhisperFeatureExtractor.from_pretrained(folder), model


def wave(samples, seed=0):
    """A random waveform of ``samples`` samples."""
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(samples, generator=generator)


def reference_frames(reference, wav):
    """transformers' encoder output on the extractor's log-mel of each
    consecutive 30 s piece of ``wav``, concatenated, cut to the frames
    that start inside the audio (one per 320 samples)."""
    extractor, model = reference
    pieces = []
    for start in range(0, len(wav), WINDOW):
        piece = wav[start : start + WINDOW].numpy()
        mel = extractor(piece, sampling_rate=RATE, return_tensors="pt")
        with torch.no_grad():
            pieces.append(model(mel.input_features).last_hidden_state[0])
    return torch.cat(pieces)[: math.ceil(len(wav) / 320)]


def test_a_whisper_folder_is_built_as_the_whisper_encoder(folder, tmp_path):
    assert isinstance(build_encoder("audio", folder), WhisperAudioEncoder)
    hubert = build_tiny_hubert(tmp_path / "hubert")
    assert type(build_encoder("audio", hubert)) is HFAudioEncoder


def test_the_encoder_of_a_whisper_asr_checkpoint_is_loaded(tmp_path):
    """A WhisperForConditionalGeneration checkpoint (as openai/whisper-*):
    its encoder's weights, under the ``model.`` prefix, are the ones
    loaded; its decoder is left out."""
    folder = build_tiny_whisper(tmp_path / "asr")
    encoder = build_encoder("audio", str(folder), freeze="frozen")
    saved = WhisperModel.from_pretrained(folder).encoder.state_dict()
    loaded = encoder.model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_a_whisper_built_from_its_config_takes_the_pretrained_weights(
    folder,
):
    """pretrained=False (an export: the weights come from its
    checkpoint): the same modules, the same fingerprint once loaded."""
    pretrained = build_encoder("audio", folder, freeze="frozen")
    bare = build_encoder("audio", folder, freeze="frozen", pretrained=False)
    assert bare.fingerprint() != pretrained.fingerprint()
    bare.load_state_dict(pretrained.state_dict())
    assert bare.fingerprint() == pretrained.fingerprint()


def test_whisper_runs_on_fused_attention(folder):
    for pretrained in (True, False):
        encoder = build_encoder("audio", folder, pretrained=pretrained)
        assert encoder.model.config._attn_implementation == "sdpa"


def test_the_log_mel_equals_the_feature_extractors(encoder, reference):
    wav = wave(3 * RATE + 7)
    expected = reference[0](wav.numpy(), sampling_rate=RATE).input_features
    padded = torch.nn.functional.pad(wav, (0, WINDOW - len(wav)))
    got = encoder.log_mel(padded[None])
    assert got.shape == (1, 80, 3000)
    assert torch.allclose(got, torch.as_tensor(expected), atol=1e-4)


@pytest.mark.parametrize("samples", [1, 319, 320, 321, 16000, 40007, WINDOW])
def test_the_frames_are_those_of_the_real_audio_50_per_second(encoder, samples):
    feats = encoder(wave(samples)[None])
    assert feats.shape[1] == math.ceil(samples * 50 / RATE)


def test_one_utterance_equals_transformers_encoder_on_its_log_mel(
    encoder, reference
):
    wav = wave(2 * RATE + 123)
    with torch.no_grad():
        got = encoder(wav[None])[0]
    expected = reference_frames(reference, wav)
    assert got.shape == expected.shape == (math.ceil(len(wav) / 320), 16)
    assert torch.allclose(got, expected, atol=1e-5)


def test_audio_longer_than_30_s_is_encoded_in_consecutive_windows(
    encoder, reference
):
    wav = wave(2 * WINDOW + 5 * RATE + 1)  # 65 s: three windows
    with torch.no_grad():
        got = encoder(wav[None])[0]
    assert got.shape[0] == 2 * 1500 + 250 + 1
    assert torch.allclose(got, reference_frames(reference, wav), atol=1e-5)


def test_a_batch_of_mixed_lengths_equals_each_utterance_alone(encoder):
    lengths = [WINDOW + RATE, 3 * RATE + 11, RATE // 2]  # 2 windows padded
    wavs = [wave(n, seed=n) for n in lengths]
    batch = torch.zeros(len(wavs), max(lengths))
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = wav
        batch[i, len(wav) :] = 1.0  # padding must not be heard
    lens = torch.tensor(lengths, dtype=torch.float) / max(lengths)
    with torch.no_grad():
        feats = encoder(batch, lens)
        out_lens = encoder.output_lens(lens, batch.shape[1], feats.shape[1])
        frames = torch.round(out_lens * feats.shape[1]).long().tolist()
        for i, wav in enumerate(wavs):
            alone = encoder(wav[None])[0]
            assert frames[i] == alone.shape[0] == math.ceil(lengths[i] / 320)
            assert torch.allclose(feats[i, : frames[i]], alone, atol=1e-5)


def test_the_hidden_states_are_transformers_and_feed_a_layer_sum(
    encoder, reference
):
    """``all``: the input of the first layer, then every layer's output
    (the last after the final LayerNorm, the encoder's output); a
    WeightedLayerSum over them starts as their mean."""
    wav = wave(RATE)
    extractor, model = reference
    mel = extractor(wav.numpy(), sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        stacked = encoder.hidden_states(wav[None], None, "all")
        out = model(mel.input_features, output_hidden_states=True)
    expected = [*out.hidden_states[:-1], out.last_hidden_state]
    assert stacked.shape == (1, 50, 3, 16)
    for layer, hidden in enumerate(expected):
        assert torch.allclose(stacked[0, :, layer], hidden[0, :50], atol=1e-5)
    summed = WeightedLayerSum(3)(stacked)
    assert torch.allclose(summed, stacked.mean(2), atol=1e-6)


def trained(encoder):
    """Names of the parameters that receive a gradient from one batch."""
    encoder.train()
    encoder.zero_grad()
    encoder(wave(RATE)[None]).pow(2).mean().backward()
    return {
        name
        for name, param in encoder.model.named_parameters()
        if param.grad is not None and param.grad.abs().sum() > 0
    }


@pytest.mark.parametrize("freeze", ["frozen", "paper", "trainable"])
def test_each_freeze_policy_trains_its_parameters(folder, freeze):
    """frozen: none; paper: the transformer, not the convolutions;
    trainable: all but the fixed sinusoidal positions."""
    encoder = build_encoder("audio", folder, freeze=freeze)
    every = {n for n, _ in encoder.model.named_parameters()}
    front = {n for n in every if n.startswith(("conv1.", "conv2."))}
    expected = {
        "frozen": set(),
        "paper": every - front - {"embed_positions.weight"},
        "trainable": every - {"embed_positions.weight"},
    }[freeze]
    if freeze == "frozen":
        with pytest.raises(RuntimeError, match="does not require grad"):
            trained(encoder)
        return
    assert trained(encoder) == expected


def test_the_fingerprint_holds_the_log_mel_settings(folder, tmp_path):
    """Another FFT size (same model weights) gives other features, so
    another feature-cache key."""
    other = shutil.copytree(folder, tmp_path / "other")
    config = json.loads((other / "preprocessor_config.json").read_text())
    config["n_fft"] = 512
    (other / "preprocessor_config.json").write_text(json.dumps(config))
    one = build_encoder("audio", folder, freeze="frozen")
    two = build_encoder("audio", str(other), freeze="frozen")
    assert one.fingerprint() != two.fingerprint()
    assert one.fingerprint() == build_encoder("audio", folder).fingerprint()


def test_another_sample_rate_is_refused_naming_the_model(folder):
    with pytest.raises(EncoderError, match="takes 16000 Hz audio.*8000"):
        build_encoder("audio", folder, sample_rate=8000)


# ------------------------------------------- a fold: train, cache, export


@pytest.fixture(scope="module")
def whisper_fold(tmp_path_factory, synthetic_corpus, synthetic_prepared, train):
    """A tiny Whisper + hashing fold trained with the recipe twice, fold
    1, 1 epoch: fine-tuned (freeze paper) and frozen from the feature
    cache; the fine-tuned one exported with ONNX graphs."""
    root = tmp_path_factory.mktemp("whisper_fold")
    audio = build_tiny_whisper_encoder(root / "whisper")
    runs = {}
    cache = root / "feature_cache"
    for name, extra in (
        # no modality masking: the audio encoder is trained in epoch 1
        ("tuned", {"number_of_epochs": 1, "modality_masking": False}),
        (
            "cached",
            {
                "number_of_epochs": 1,
                "freeze_policy": "frozen",
                "feature_cache": True,
                "feature_cache_folder": str(cache),
            },
        ),
    ):
        runs[name] = root / name
        train(
            synthetic_corpus,
            synthetic_prepared,
            runs[name],
            audio,
            "hashing",
            extra,
        )
    model = root / "model"
    command = [sys.executable, "-m", "speechbrain_mtmm", "export"]
    command += ["--run", str(runs["tuned"]), "--out", str(model), "--onnx"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE_ENV),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return SimpleNamespace(runs=runs, cache=cache, model=model, audio=audio)


@pytest.mark.slow
def test_a_frozen_whisper_fold_trains_from_the_feature_cache(whisper_fold):
    """Every utterance's audio features cached once, one frame per 320
    samples of its audio (at most the recipe's crop)."""
    run = whisper_fold.runs["cached"]
    assert (run / "test_results.json").is_file()
    (folder,) = whisper_fold.cache.glob("audio-*")
    index = json.loads((folder / "index.json").read_text())
    assert "WhisperAudioEncoder" in json.dumps(index["spec"])
    shapes = [item["shape"] for item in index["items"].values()]
    assert shapes and all(s[1:] == [1, 16] for s in shapes)


@pytest.mark.slow
def test_a_fine_tuned_whisper_fold_predicts_alike_in_pytorch_and_onnx(
    whisper_fold,
):
    """The export's PyTorch recognizer and its ONNX one, on utterances of
    other lengths than the export's probes: probabilities and dimensions
    within 1e-4."""
    torch_model = load_recognizer(str(whisper_fold.model))
    onnx_model = load_recognizer(str(whisper_fold.model), backend="onnx")
    lengths = [int(3.3 * RATE), int(0.7 * RATE), int(9.1 * RATE)]
    wavs = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wavs[i, :n] = wave(n, seed=i)
    lens = torch.tensor(lengths, dtype=torch.float) / max(lengths)
    texts = ["I got the job!", "Why?", "Calm down, please."]
    expected = torch_model.predict_batch(wavs, lens, texts)
    got = onnx_model.predict_batch(wavs, lens, texts)
    assert len(got) == len(expected) == 3
    for one, two in zip(expected, got):
        assert one["probs"].keys() == two["probs"].keys()
        for label, p in one["probs"].items():
            assert abs(p - two["probs"][label]) <= 1e-4
        numbers = [k for k, v in one.items() if isinstance(v, float)]
        assert "valence" in numbers
        for key in numbers:
            assert abs(one[key] - two[key]) <= 1e-4, key


@pytest.mark.slow
def test_a_fine_tuned_whisper_fold_trains_the_transformer_not_the_front_end(
    whisper_fold,
):
    """The export's audio encoder, against the weights it started from:
    every transformer layer changed, the convolutions did not."""
    exported = torch.load(whisper_fold.model / "system.ckpt", weights_only=True)
    start = WhisperModel.from_pretrained(whisper_fold.audio).encoder
    prefix = "audio_encoder.model."
    tuned = {
        k[len(prefix) :]: v for k, v in exported.items() if k.startswith(prefix)
    }
    assert tuned.keys() == start.state_dict().keys()
    changed = {
        name
        for name, value in start.state_dict().items()
        if not torch.equal(value, tuned[name])
    }
    assert not changed & {n for n in tuned if n.startswith(("conv1", "conv2"))}
    assert {n.split(".")[1] for n in changed if n.startswith("layers.")} == {
        "0",
        "1",
    }
