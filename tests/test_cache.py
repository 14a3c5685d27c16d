"""Specifications of the frozen-encoder feature cache
(speechbrain_mtmm.training.cache) and of the recipe trained from it.

Tiny random HuggingFace encoders are written to temp folders; nothing is
downloaded.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from speechbrain.dataio import audio_io

from speechbrain_mtmm.encoders import HFAudioEncoder, HFTextEncoder
from speechbrain_mtmm.nnet import WeightedLayerSum
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_deberta_v2,
    build_tiny_hubert,
)
from speechbrain_mtmm.training.cache import (
    FeatureCache,
    FeatureCacheError,
    check_cache_options,
    load_features,
)

TEXTS = ["Excuse me.", "Do you have your forms?", "Yeah.", "Let me see them."]
# float16 keeps 11 significant bits: relative error <= 2**-11 per value
FP16_RTOL, FP16_ATOL = 2e-3, 1e-3


@pytest.fixture(scope="module")
def models(tmp_path_factory, synthetic_prepared):
    folder = tmp_path_factory.mktemp("cache_models")
    with open(synthetic_prepared / "iemocap.json") as fin:
        texts = [e["text"] for e in json.load(fin).values()]
    return {
        "audio": build_tiny_hubert(folder / "hubert"),
        "text": build_tiny_deberta_v2(folder / "deberta", texts),
    }


def audio_encoder(models, **kwargs):
    return HFAudioEncoder(models["audio"], freeze="frozen", **kwargs)


def text_encoder(models, **kwargs):
    return HFTextEncoder(models["text"], freeze="frozen", **kwargs)


@pytest.fixture
def wavs(tmp_path):
    """Four utterances of different lengths (0.7-2.2 s) on disk."""
    torch.manual_seed(0)
    entries = {}
    for i, seconds in enumerate((1.3, 0.7, 2.2, 1.0)):
        path = str(tmp_path / f"utt{i}.wav")
        audio_io.save(path, 0.1 * torch.randn(1, int(seconds * 16000)), 16000)
        entries[f"utt{i}"] = {"wav": path, "duration": seconds}
    return entries


# ----------------------------------------------------------------- the keys


def test_cache_key_is_stable_for_the_same_encoder_and_settings(models):
    first = FeatureCache("root", audio_encoder(models))
    again = FeatureCache("root", audio_encoder(models))
    assert first.spec["fingerprint"] == audio_encoder(models).fingerprint()
    assert first.key == again.key and first.folder == again.folder


def test_cache_key_changes_when_a_single_weight_changes(models):
    encoder = audio_encoder(models)
    before = FeatureCache("root", encoder).key
    with torch.no_grad():
        encoder.model.encoder.layers[-1].feed_forward.output_dense.bias[0] += (
            1e-4
        )
    assert FeatureCache("root", encoder).key != before


def test_cache_key_changes_with_the_layer_selection(models):
    encoder = audio_encoder(models)  # 2 layers: hidden states 0, 1, 2
    keys = {
        str(layers): FeatureCache("root", encoder, layers).key
        for layers in ([-1], [2], [1], [0, 2])
    }
    # -1 and 2 both name the last layer
    assert keys["[-1]"] == keys["[2]"]
    assert len({keys["[-1]"], keys["[1]"], keys["[0, 2]"]}) == 3


@pytest.mark.parametrize(
    "change",
    [{"sample_rate": 8000}, {"max_audio_seconds": 5.0}],
    ids=["sample_rate", "max_audio_seconds"],
)
def test_cache_key_changes_with_the_audio_settings(models, change):
    encoder = audio_encoder(models)
    base = {"sample_rate": 16000, "max_audio_seconds": 10.0}
    before = FeatureCache("root", encoder, **base).key
    assert FeatureCache("root", encoder, **{**base, **change}).key != before


def test_cache_key_changes_with_the_encoder_source(models, tmp_path):
    copy = shutil.copytree(models["audio"], tmp_path / "copy")
    original = FeatureCache("root", audio_encoder(models))
    moved = FeatureCache("root", HFAudioEncoder(str(copy), freeze="frozen"))
    assert original.spec["fingerprint"] == moved.spec["fingerprint"]
    assert original.key != moved.key


def test_item_key_changes_with_the_audio_file_and_not_otherwise(models, wavs):
    cache = FeatureCache("root", audio_encoder(models))
    entry = wavs["utt0"]
    before = cache.item_key("utt0", entry)
    assert cache.item_key("utt0", dict(entry)) == before
    assert cache.item_key("utt1", wavs["utt1"]) != before
    audio_io.save(entry["wav"], 0.2 * torch.randn(1, 20000), 16000)
    assert cache.item_key("utt0", entry) != before


def test_item_key_changes_with_the_transcript_and_tokenizer(models):
    cache = FeatureCache("root", text_encoder(models))
    before = cache.item_key("u", {"text": TEXTS[1]})
    assert cache.item_key("u", {"text": TEXTS[1]}) == before
    assert cache.item_key("u", {"text": TEXTS[1] + "!"}) != before
    truncating = FeatureCache("root", text_encoder(models, max_length=3))
    assert truncating.key == cache.key  # same model, same folder...
    assert truncating.item_key("u", {"text": TEXTS[1]}) != before  # ...ids


# ------------------------------------------------------------ the features


def test_cached_audio_features_equal_the_encoder_output(models, wavs, tmp_path):
    """Built in padded batches of 3, each utterance gets the features it
    gets alone, cropped to its own frames, up to float16 rounding."""
    encoder = audio_encoder(models)
    files = FeatureCache(tmp_path / "c", encoder).build(wavs, batch_size=3)
    for utt_id, entry in wavs.items():
        wav, _ = audio_io.load(entry["wav"])
        with torch.no_grad():
            expected = encoder(wav, torch.ones(1))[0]
        cached = load_features(files[utt_id])
        assert cached.dtype == torch.float16
        assert cached.shape == (expected.shape[0], 1, expected.shape[1])
        torch.testing.assert_close(
            cached[:, 0].float(), expected, rtol=FP16_RTOL, atol=FP16_ATOL
        )


def test_cached_text_features_equal_the_encoder_output(models, tmp_path):
    encoder = text_encoder(models)
    entries = {f"u{i}": {"text": text} for i, text in enumerate(TEXTS)}
    files = FeatureCache(tmp_path / "c", encoder).build(entries, batch_size=4)
    for utt_id, entry in entries.items():
        ids = encoder.tokenize(entry["text"])
        with torch.no_grad():
            expected = encoder(ids[None], torch.ones(1))[0]
        cached = load_features(files[utt_id])[:, 0].float()
        assert cached.shape == expected.shape
        torch.testing.assert_close(
            cached, expected, rtol=FP16_RTOL, atol=FP16_ATOL
        )


def test_several_cached_layers_are_the_encoder_hidden_states(
    models, wavs, tmp_path
):
    encoder = audio_encoder(models)
    cache = FeatureCache(tmp_path / "c", encoder, layers=[0, -1])
    files = cache.build(wavs)
    wav, _ = audio_io.load(wavs["utt2"]["wav"])
    with torch.no_grad():  # every hidden state, by HF itself
        out = encoder.model(
            (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7),
            output_hidden_states=True,
        )
    expected = torch.stack(
        [out.hidden_states[0][0], out.last_hidden_state[0]], dim=1
    )  # (T, 2, D)
    cached = load_features(files["utt2"]).float()
    torch.testing.assert_close(cached, expected, rtol=FP16_RTOL, atol=FP16_ATOL)


def test_a_second_build_computes_nothing(models, wavs, tmp_path):
    cache = FeatureCache(tmp_path / "c", audio_encoder(models))
    files = cache.build(wavs)
    stamps = {p: os.stat(p).st_mtime_ns for p in files.values()}
    assert cache.build(wavs) == files
    assert {p: os.stat(p).st_mtime_ns for p in files.values()} == stamps
    index = json.loads((cache.folder / "index.json").read_text())
    assert {v["id"] for v in index["items"].values()} == set(wavs)


def test_a_changed_audio_file_is_recomputed_not_served_stale(
    models, wavs, tmp_path
):
    encoder = audio_encoder(models)
    cache = FeatureCache(tmp_path / "c", encoder)
    old = cache.build(wavs)["utt0"]
    new_wav = 0.3 * torch.randn(1, 16000)
    audio_io.save(wavs["utt0"]["wav"], new_wav, 16000)
    new = cache.build(wavs)["utt0"]
    assert new != old
    with torch.no_grad():
        expected = encoder(audio_io.load(wavs["utt0"]["wav"])[0], None)[0]
    torch.testing.assert_close(
        load_features(new)[:, 0].float(),
        expected,
        rtol=FP16_RTOL,
        atol=FP16_ATOL,
    )


def test_cache_files_are_float16_numpy_arrays(models, wavs, tmp_path):
    files = FeatureCache(tmp_path / "c", audio_encoder(models)).build(wavs)
    array = np.load(files["utt1"])
    assert array.dtype == np.float16 and array.ndim == 3


# ------------------------------------------------------- weighted layer sum


def test_weighted_layer_sum_is_a_softmax_weighted_sum_and_learns():
    layer_sum = WeightedLayerSum(3)
    with torch.no_grad():
        layer_sum.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    feats = torch.randn(2, 5, 3, 4)
    weights = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), dim=0)
    expected = sum(weights[i] * feats[:, :, i] for i in range(3))
    out = layer_sum(feats)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert layer_sum.logits.grad is not None
    assert layer_sum.logits.grad.abs().sum() > 0


def test_weighted_layer_sum_of_one_layer_is_that_layer_without_parameters():
    layer_sum = WeightedLayerSum(1)
    feats = torch.randn(2, 5, 1, 4)
    assert torch.equal(layer_sum(feats), feats[:, :, 0])
    assert not list(layer_sum.parameters())


def test_weighted_layer_sum_rejects_a_wrong_layer_count():
    with pytest.raises(ValueError, match="expected 2 layers"):
        WeightedLayerSum(2)(torch.randn(1, 3, 4, 8))


# ------------------------------------------------------------------ options


def test_caching_needs_frozen_encoders():
    check_cache_options(True, {"audio": "frozen", "text": "frozen"})
    check_cache_options(False, {"audio": "paper"})
    with pytest.raises(FeatureCacheError, match="the audio encoder's freeze"):
        check_cache_options(True, {"audio": "paper", "text": "frozen"})


# ------------------------------------------------------------ the recipe


def read_predictions(output):
    with open(output / "test_predictions.jsonl") as fin:
        return {row["id"]: row for row in map(json.loads, fin)}


FROZEN = {"number_of_epochs": 2, "freeze_policy": "frozen"}


@pytest.fixture(scope="module")
def cache_runs(
    tmp_path_factory, synthetic_corpus, synthetic_prepared, models, train
):
    """Fold 1 uncached and cached (same seed), then fold 2 cached."""
    root = tmp_path_factory.mktemp("cache_runs")
    cached = {**FROZEN, "feature_cache": True}
    cached["feature_cache_folder"] = str(root / "feature_cache")
    runs = {}
    for name, extra in (
        ("uncached", FROZEN),
        ("cached", cached),
        ("cached_fold2", {**cached, "fold": 2}),
    ):
        output = root / name
        result = train(
            synthetic_corpus,
            synthetic_prepared,
            output,
            models["audio"],
            models["text"],
            extra,
        )
        runs[name] = (output, result.stdout + result.stderr)
    runs["cache_folder"] = root / "feature_cache"
    return runs


def test_cached_training_gives_the_results_of_uncached_training(cache_runs):
    """Same seed, frozen encoders, 2 epochs (the first with the audio
    masked by Random Modality Masking): the data order, initialisation and
    dropout masks are identical, so the runs differ only by the float16
    rounding of the cached features (relative 5e-4 per value), which moves
    probabilities by ~1e-4 and CCCs by ~1e-3 here. Tolerances: 5e-3 on
    probabilities and metrics, 0.02 on predicted dimensions (1-5 scale);
    predicted classes equal."""
    uncached, cached = cache_runs["uncached"][0], cache_runs["cached"][0]
    with open(uncached / "train_log.txt") as fin:
        assert "masked: audio" in fin.read()  # masking fired
    expected = json.loads((uncached / "test_results.json").read_text())
    results = json.loads((cached / "test_results.json").read_text())
    for key in ("WA", "UA", "macro_F1", "CCC_valence", "CCC_arousal"):
        assert results[key] == pytest.approx(expected[key], abs=5e-3), key
    assert results["confusion"] == expected["confusion"]
    reference, rows = read_predictions(uncached), read_predictions(cached)
    assert rows.keys() == reference.keys()
    for utt_id, row in rows.items():
        ref = reference[utt_id]
        assert row["pred_emo"] == ref["pred_emo"]
        for label, p in row["probs"].items():
            assert p == pytest.approx(ref["probs"][label], abs=5e-3)
        for name in ("pred_valence", "pred_arousal"):
            assert row[name] == pytest.approx(ref[name], abs=0.02)


def test_all_folds_share_one_cache_computed_once(cache_runs):
    folders = sorted(p.name for p in cache_runs["cache_folder"].iterdir())
    assert [name.split("-")[0] for name in folders] == ["audio", "text"]
    first, second = cache_runs["cached"][1], cache_runs["cached_fold2"][1]
    assert "computing" in first and "computing" not in second
    assert second.count(" hit") == 2  # audio and text


def test_cached_run_with_fine_tuned_encoders_is_a_clear_error(
    tmp_path, synthetic_corpus, synthetic_prepared, models, refused
):
    line = refused(
        synthetic_corpus,
        synthetic_prepared,
        tmp_path / "run",
        models["audio"],
        models["text"],
        {"feature_cache": True, "feature_cache_folder": str(tmp_path)},
    )
    assert line.startswith(
        "FeatureCacheError: feature_cache: True needs frozen encoders"
    )


def test_checkpoints_of_a_cached_run_hold_only_what_training_changes(
    cache_runs,
):
    run, log = cache_runs["cached"]
    saved = sorted(run.glob("save/CKPT+*/system.ckpt"))
    assert saved
    for path in saved:
        keys = torch.load(path, weights_only=True).keys()
        assert not [k for k in keys if k.split(".")[0].endswith("_encoder")]
        record = json.loads(path.with_name("system.frozen.json").read_text())
        assert sorted(record) == ["audio", "text"]
    assert re.search(r"checkpoint in \S+ \([\d.]+ MB, [\d.]+ s\)", log)
