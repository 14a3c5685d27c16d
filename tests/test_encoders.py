"""Specifications of the audio/text encoders (speechbrain_mtmm.encoders).

All HuggingFace models are tiny random ones written to a temp folder by
speechbrain_mtmm.testing.tiny_models; nothing is downloaded.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zlib

import pytest
import torch
from transformers import AutoConfig

from speechbrain_mtmm.encoders import (
    EncoderError,
    FbankAudioEncoder,
    HashingTokenizer,
    HFAudioEncoder,
    HFTextEncoder,
    TokenEmbeddingTextEncoder,
    build_encoder,
)
from speechbrain_mtmm.encoders.huggingface import narrow_relative_positions
from speechbrain_mtmm.testing import tiny_models

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Different widths per family, so a hard-coded size would be caught.
AUDIO_BUILDERS = {
    "hubert": (tiny_models.build_tiny_hubert, {"hidden_size": 32}),
    "wavlm": (tiny_models.build_tiny_wavlm, {"hidden_size": 24}),
    "wav2vec2": (tiny_models.build_tiny_wav2vec2, {"hidden_size": 40}),
}
TEXT_BUILDERS = {
    "deberta_v2": (tiny_models.build_tiny_deberta_v2, {"hidden_size": 32}),
    "roberta": (tiny_models.build_tiny_roberta, {"hidden_size": 24}),
}
MODEL_CLASSES = {
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
    "wav2vec2": "Wav2Vec2Model",
    "deberta_v2": "DebertaV2Model",
    "roberta": "RobertaModel",
}
TEXTS = [
    "Excuse me.",
    "Who told you to get in this line?",
    "I'm sorry, I don't know what you are talking about.",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    out = {}
    for name, (builder, kwargs) in {**AUDIO_BUILDERS, **TEXT_BUILDERS}.items():
        out[name] = builder(root / name, **kwargs)
    return out


def _audio(folders, name="hubert", **kwargs):
    return HFAudioEncoder(folders[name], **kwargs)


def _text(folders, name="deberta_v2", **kwargs):
    return HFTextEncoder(folders[name], **kwargs)


def _num_frames(encoder, num_samples):
    """Valid frame count of the HF conv stack (independent reference)."""
    n = torch.tensor([num_samples])
    return int(encoder.model._get_feat_extract_output_lengths(n)[0])


def _pad_batch(seqs, length=None):
    """Zero-pads 1-D tensors like SpeechBrain's PaddedBatch."""
    length = length or max(len(s) for s in seqs)
    batch = torch.zeros(len(seqs), length, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = s
    lens = torch.tensor([len(s) / length for s in seqs])
    return batch, lens


# ----------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", [*AUDIO_BUILDERS, *TEXT_BUILDERS])
def test_output_size_matches_loaded_config(folders, name):
    cls = HFAudioEncoder if name in AUDIO_BUILDERS else HFTextEncoder
    encoder = cls(folders[name])
    expected = AutoConfig.from_pretrained(folders[name]).hidden_size
    assert encoder.output_size == expected


def test_modality_attribute_of_every_encoder(folders):
    assert _audio(folders).modality == "audio"
    assert _text(folders).modality == "text"
    assert FbankAudioEncoder(d_model=8).modality == "audio"
    assert TokenEmbeddingTextEncoder(d_model=8).modality == "text"


def test_audio_output_shape_follows_conv_stack(folders):
    encoder = _audio(folders).eval()
    wav = torch.randn(3, 20000)
    feats = encoder(wav, torch.tensor([1.0, 0.7, 0.4]))
    assert feats.shape == (3, _num_frames(encoder, 20000), 32)


def test_audio_relative_lengths_are_preserved_within_one_frame(folders):
    encoder = _audio(folders).eval()
    total = 32000
    feats = encoder(torch.randn(4, total), torch.ones(4))
    for num_samples in (32000, 24011, 16000, 5123):
        valid = _num_frames(encoder, num_samples)
        from_lens = round(num_samples / total * feats.shape[1])
        assert abs(valid - from_lens) <= 1


@pytest.mark.parametrize("kind", ["hubert", "wavlm", "fbank"])
def test_output_lens_count_exactly_the_frames_of_each_utterance(folders, kind):
    from speechbrain_mtmm.nnet.padding import lengths_to_mask, masked_mean

    if kind == "fbank":
        torch.manual_seed(0)
        encoder = FbankAudioEncoder(d_model=16).eval()
    else:
        encoder = _audio(folders, kind).eval()
    torch.manual_seed(1)
    sizes = [39216, 20784, 16001, 7777, 5123]
    wavs = [torch.randn(n) * 0.3 for n in sizes]
    batch, lens = _pad_batch(wavs)
    feats = encoder(batch, lens)
    out_lens = encoder.output_lens(lens, batch.shape[1], feats.shape[1])
    mask = lengths_to_mask(out_lens, feats.shape[1])
    pooled = masked_mean(feats, mask)
    for i, wav in enumerate(wavs):
        alone = encoder(wav.unsqueeze(0), torch.ones(1))
        assert int(mask[i].sum()) == alone.shape[1], sizes[i]
        torch.testing.assert_close(
            pooled[i], alone[0].mean(0), atol=1e-4, rtol=0
        )


def test_text_output_lens_are_the_token_lens(folders):
    lens = torch.tensor([1.0, 0.5])
    assert _text(folders).output_lens(lens, 10, 10) is lens


def test_text_output_shape_is_tokens_by_hidden(folders):
    encoder = _text(folders).eval()
    batch, lens = _pad_batch([encoder.tokenize(t) for t in TEXTS])
    assert encoder(batch, lens).shape == (3, batch.shape[1], 32)


# ------------------------------------------------------ padding invariance


@pytest.mark.parametrize("name", list(AUDIO_BUILDERS))
def test_padding_does_not_change_audio_features(folders, name):
    encoder = _audio(folders, name).eval()
    torch.manual_seed(0)
    short = torch.randn(12345) * 0.3 + 0.05
    other = torch.randn(20000)
    alone = encoder(short.unsqueeze(0), torch.ones(1))
    batch, lens = _pad_batch([other, short])
    batched = encoder(batch, lens)
    valid = _num_frames(encoder, 12345)
    assert alone.shape[1] == valid
    torch.testing.assert_close(batched[1, :valid], alone[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(TEXT_BUILDERS))
def test_padding_does_not_change_text_features(folders, name):
    encoder = _text(folders, name).eval()
    ids = [encoder.tokenize(t) for t in TEXTS]
    alone = encoder(ids[0].unsqueeze(0), torch.ones(1))
    batch, lens = _pad_batch(ids)
    batched = encoder(batch, lens)
    n = len(ids[0])
    torch.testing.assert_close(batched[0, :n], alone[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(TEXT_BUILDERS))
def test_text_mask_comes_from_lengths_not_from_pad_ids(folders, name):
    # RoBERTa's <s> is id 0, the data loader's pad value: comparing ids to
    # the pad id would mask the first real token. Garbage padding must not
    # matter either, since the mask comes from the lengths.
    encoder = _text(folders, name).eval()
    ids = encoder.tokenize(TEXTS[1])
    zero_padded, lens = _pad_batch([ids], length=len(ids) + 7)
    garbage = zero_padded.clone()
    garbage[0, len(ids) :] = 5
    out_zero = encoder(zero_padded, lens)[0, : len(ids)]
    out_garbage = encoder(garbage, lens)[0, : len(ids)]
    alone = encoder(ids.unsqueeze(0), torch.ones(1))[0]
    torch.testing.assert_close(out_zero, alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_garbage, alone, atol=1e-4, rtol=0)


def test_waveform_is_standardised_per_utterance(folders):
    # do_normalize=True in the saved feature-extractor config: gain and DC
    # offset of the valid part must not change the features.
    encoder = _audio(folders).eval()
    wav = torch.randn(1, 16000)
    base = encoder(wav, torch.ones(1))
    scaled, lens = _pad_batch([wav[0] * 7.0 + 0.5], length=24000)
    out = encoder(scaled, lens)[:, : base.shape[1]]
    torch.testing.assert_close(out, base, atol=1e-4, rtol=0)


# ---------------------------------------------------------- freeze policies


def _grad_flags(module):
    return {n: p.requires_grad for n, p in module.named_parameters()}


def test_paper_policy_freezes_audio_cnn_and_projection_only(folders):
    encoder = _audio(folders, freeze="paper")
    model = encoder.model
    for module in (model.feature_extractor, model.feature_projection):
        assert not any(p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_paper_policy_freezes_text_embeddings_only(folders):
    encoder = _text(folders, freeze="paper")
    model = encoder.model
    assert not any(p.requires_grad for p in model.embeddings.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters())


@pytest.mark.parametrize("kind", ["audio", "text"])
def test_frozen_policy_freezes_everything_and_runs_without_grad(folders, kind):
    encoder = (_audio if kind == "audio" else _text)(folders, freeze="frozen")
    encoder.train()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.model.training
    if kind == "audio":
        out = encoder(torch.randn(2, 8000), torch.ones(2))
    else:
        out = encoder(encoder.tokenize(TEXTS[0]).unsqueeze(0), torch.ones(1))
    assert not out.requires_grad


def test_trainable_policy_trains_audio_cnn_too(folders):
    encoder = _audio(folders, freeze="trainable")
    assert all(p.requires_grad for p in encoder.parameters())
    assert encoder.model.feature_extractor._requires_grad


def test_trainable_policy_trains_text_embeddings_too(folders):
    encoder = _text(folders, freeze="trainable")
    assert all(p.requires_grad for p in encoder.parameters())


def test_frozen_parts_stay_in_eval_mode_when_training(folders):
    encoder = _audio(folders, freeze="paper").train()
    assert not encoder.model.feature_extractor.training
    assert not encoder.model.feature_projection.training
    assert encoder.model.encoder.training
    text = _text(folders, freeze="paper").train()
    assert not text.model.embeddings.training
    assert text.model.encoder.training


@pytest.mark.parametrize("kind", ["audio", "text"])
def test_set_trainable_false_then_true_restores_policy(folders, kind):
    encoder = (_audio if kind == "audio" else _text)(folders, freeze="paper")
    encoder.train()
    policy = _grad_flags(encoder)
    assert any(policy.values()) and not all(policy.values())

    encoder.set_trainable(False)
    assert not any(_grad_flags(encoder).values())
    assert not any(m.training for m in encoder.modules())
    if kind == "audio":
        inputs, lens = torch.randn(1, 8000), torch.ones(1)
    else:
        inputs, lens = encoder.tokenize(TEXTS[0]).unsqueeze(0), torch.ones(1)
    assert not encoder(inputs, lens).requires_grad

    encoder.set_trainable(True)
    assert _grad_flags(encoder) == policy
    assert encoder.model.encoder.training
    assert encoder(inputs, lens).requires_grad


def test_set_trainable_true_keeps_frozen_policy_frozen(folders):
    encoder = _audio(folders, freeze="frozen").set_trainable(True)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_gradients_reach_audio_transformer_not_cnn_under_paper(folders):
    encoder = _audio(folders, freeze="paper").train()
    encoder(torch.randn(2, 8000), torch.tensor([1.0, 0.6])).pow(
        2
    ).sum().backward()
    for layer in encoder.model.encoder.layers:
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    for p in encoder.model.feature_extractor.parameters():
        assert p.grad is None


def test_gradients_reach_text_transformer_not_embeddings_under_paper(folders):
    encoder = _text(folders, freeze="paper").train()
    batch, lens = _pad_batch([encoder.tokenize(t) for t in TEXTS])
    encoder(batch, lens).pow(2).sum().backward()
    for layer in encoder.model.encoder.layer:
        assert all(p.grad is not None for p in layer.parameters())
    for p in encoder.model.embeddings.parameters():
        assert p.grad is None


def test_invalid_freeze_policy_is_rejected(folders):
    with pytest.raises(ValueError):
        _audio(folders, freeze="cnn")


# -------------------------------------------------------- layer selection


def test_hidden_states_stack_the_chosen_layers_of_the_hf_model(folders):
    encoder = _audio(folders).eval()
    wav = torch.randn(2, 8000)
    stack = encoder.hidden_states(wav, torch.ones(2), [0, -1, 1])
    assert stack.shape[2] == 3
    with torch.no_grad():  # the HF model's own outputs
        norm = (wav - wav.mean(1, keepdim=True)) / torch.sqrt(
            wav.var(1, unbiased=False, keepdim=True) + 1e-7
        )
        out = encoder.model(norm, output_hidden_states=True)
    torch.testing.assert_close(stack[:, :, 0], out.hidden_states[0])
    torch.testing.assert_close(stack[:, :, 1], out.last_hidden_state)
    torch.testing.assert_close(stack[:, :, 2], out.hidden_states[1])
    torch.testing.assert_close(encoder(wav, torch.ones(2)), stack[:, :, 1])


def test_layer_out_of_range_is_rejected(folders):
    encoder = _text(folders)  # 2 layers: hidden states 0..2
    assert encoder.normalize_layers([-1, 0]) == [2, 0]
    with pytest.raises(EncoderError, match="layer 3 out of range"):
        encoder.normalize_layers([3])


def test_light_encoders_have_only_their_output_as_a_layer():
    encoder = FbankAudioEncoder(d_model=8)
    assert encoder.normalize_layers([-1]) == [-1]
    with pytest.raises(EncoderError, match="no hidden layers"):
        encoder.normalize_layers([0])


# ------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("name", list(TEXT_BUILDERS))
def test_tokenize_round_trips_text(folders, name):
    encoder = _text(folders, name)
    for text in TEXTS:
        ids = encoder.tokenize(text)
        assert ids.dtype == torch.long and ids.dim() == 1
        assert ids[0].item() == encoder.tokenizer.cls_token_id
        assert ids[-1].item() == encoder.tokenizer.sep_token_id
        decoded = encoder.tokenizer.decode(ids, skip_special_tokens=True)
        assert decoded.strip() == text


@pytest.mark.parametrize("name", list(TEXT_BUILDERS))
def test_tokenize_truncates_to_max_length(folders, name):
    encoder = _text(folders, name, max_length=6)
    ids = encoder.tokenize(TEXTS[2])
    assert len(ids) == 6
    assert ids[-1].item() == encoder.tokenizer.sep_token_id


def test_hashing_tokenizer_matches_crc32_reference():
    tokenizer = HashingTokenizer(vocab_size=100)
    ids = tokenizer("Oh, WOW!")
    expected = [1] + [
        2 + zlib.crc32(t.encode()) % 98 for t in ("oh", ",", "wow", "!")
    ]
    assert ids.tolist() == expected


def test_hashing_tokenizer_is_deterministic_across_processes():
    text = "I can't believe you would do that to me."
    code = (
        "from speechbrain_mtmm.encoders import HashingTokenizer;"
        f"print(HashingTokenizer(2048)({text!r}).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": REPO_ROOT}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    here = HashingTokenizer(2048)(text).tolist()
    assert result.stdout.strip().splitlines()[-1] == str(here)


def test_hashing_tokenizer_never_emits_padding_and_truncates():
    tokenizer = HashingTokenizer(vocab_size=16, max_length=5)
    ids = tokenizer("a b c d e f g h i j")
    assert len(ids) == 5
    assert ids.min() >= 1 and ids.max() < 16
    assert tokenizer("").tolist() == [1]


# ------------------------------------------------------- swapping sources


def test_swapping_audio_source_changes_only_the_model(folders):
    wav = torch.randn(2, 8000)
    for name in AUDIO_BUILDERS:
        encoder = HFAudioEncoder(folders[name], freeze="paper").eval()
        assert type(encoder.model).__name__ == MODEL_CLASSES[name]
        out = encoder(wav, torch.tensor([1.0, 0.5]))
        assert out.shape[-1] == encoder.model.config.hidden_size


def test_swapping_text_source_changes_only_the_model(folders):
    for name in TEXT_BUILDERS:
        encoder = HFTextEncoder(folders[name], freeze="paper").eval()
        assert type(encoder.model).__name__ == MODEL_CLASSES[name]
        batch, lens = _pad_batch([encoder.tokenize(t) for t in TEXTS])
        out = encoder(batch, lens)
        assert out.shape == (3, batch.shape[1], encoder.output_size)


# ---------------------------------------------------------- offline loading


def _as_hub_cache(folder, cache_dir, repo_id):
    """Lays ``folder`` out as the HF hub cache holds a downloaded repo."""
    repo = os.path.join(cache_dir, "models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(folder, os.path.join(repo, "snapshots", commit))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)


def test_loads_offline_from_local_folder_and_hub_cache(folders, tmp_path):
    cache = str(tmp_path / "hf_cache")
    _as_hub_cache(folders["hubert"], cache, "tiny-org/tiny-hubert")
    _as_hub_cache(folders["deberta_v2"], cache, "tiny-org/tiny-deberta")
    code = textwrap.dedent(
        f"""
        import torch
        from speechbrain_mtmm.encoders import HFAudioEncoder, HFTextEncoder
        local = HFAudioEncoder({folders["hubert"]!r}).eval()
        hub = HFAudioEncoder("tiny-org/tiny-hubert", save_path={cache!r})
        wav = torch.randn(1, 8000)
        assert torch.equal(local(wav), hub.eval()(wav))
        text = HFTextEncoder("tiny-org/tiny-deberta", save_path={cache!r})
        print("ok", hub.output_size, text.tokenize("Yeah.").tolist())
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # any network attempt would fail loudly
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "empty_hf_home"),
        "PYTHONPATH": REPO_ROOT,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok 32" in result.stdout


# --------------------------------------------------------- light encoders


def test_fbank_encoder_shape_and_relative_lengths():
    encoder = FbankAudioEncoder(d_model=16, n_mels=20, num_layers=2).eval()
    wav = torch.randn(2, 16000)
    out = encoder(wav, torch.tensor([1.0, 0.5]))
    # 101 fbank frames (10 ms hop, centred) -> 51 -> 26 with stride 2
    assert out.shape == (2, 26, 16)
    assert encoder.output_size == 16


def test_fbank_encoder_padding_does_not_change_features():
    encoder = FbankAudioEncoder(d_model=16, n_mels=20).eval()
    short, other = torch.randn(8123), torch.randn(16000)
    alone = encoder(short.unsqueeze(0), torch.ones(1))[0]
    batch, lens = _pad_batch([other, short])
    batched = encoder(batch, lens)[1]
    n = alone.shape[0]
    torch.testing.assert_close(batched[:n], alone, atol=1e-4, rtol=0)


def test_token_embedding_encoder_padding_invariance():
    encoder = TokenEmbeddingTextEncoder(vocab_size=256, d_model=16).eval()
    ids = [encoder.tokenize(t) for t in TEXTS]
    alone = encoder(ids[0].unsqueeze(0), torch.ones(1))[0]
    batch, lens = _pad_batch(ids)
    torch.testing.assert_close(
        encoder(batch, lens)[0, : len(ids[0])], alone, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("cls", [FbankAudioEncoder, TokenEmbeddingTextEncoder])
def test_light_encoders_train_and_freeze(cls):
    encoder = cls(d_model=8).train()
    if cls is FbankAudioEncoder:
        inputs, lens = torch.randn(2, 4000), torch.tensor([1.0, 0.5])
    else:
        inputs, lens = _pad_batch([encoder.tokenize(t) for t in TEXTS])
    encoder(inputs, lens).sum().backward()
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    encoder.set_trainable(False)
    assert not encoder(inputs, lens).requires_grad
    encoder.set_trainable(True)
    assert encoder(inputs, lens).requires_grad


def test_the_builder_picks_the_encoder_class_from_source(folders):
    assert isinstance(build_encoder("audio", "fbank"), FbankAudioEncoder)
    assert isinstance(
        build_encoder("text", "hashing"), TokenEmbeddingTextEncoder
    )
    audio = build_encoder("audio", folders["wavlm"], freeze="frozen")
    assert isinstance(audio, HFAudioEncoder) and audio.frozen
    text = build_encoder("text", folders["roberta"], max_length=9)
    assert isinstance(text, HFTextEncoder) and text.max_length == 9


def test_an_encoder_built_without_pretrained_weights_has_the_same_shape(
    folders,
):
    pretrained = build_encoder("audio", folders["hubert"], freeze="frozen")
    bare = build_encoder(
        "audio", folders["hubert"], freeze="frozen", pretrained=False
    )
    mine, theirs = bare.state_dict(), pretrained.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(mine[k].shape == theirs[k].shape for k in mine)
    assert bare.fingerprint() != pretrained.fingerprint()  # random weights
    bare.load_state_dict(theirs)
    assert bare.fingerprint() == pretrained.fingerprint()


def test_hf_encoders_use_fused_attention_where_transformers_has_it(folders):
    """sdpa for every family that supports it; DeBERTa-v2 and WavLM have
    no scaled-dot-product path in transformers."""
    expected = {
        "hubert": "sdpa",
        "wav2vec2": "sdpa",
        "roberta": "sdpa",
        "wavlm": "eager",
        "deberta_v2": "eager",
    }
    for name, implementation in expected.items():
        modality = "text" if name in TEXT_BUILDERS else "audio"
        for pretrained in (True, False):
            encoder = build_encoder(
                modality, folders[name], freeze="frozen", pretrained=pretrained
            )
            assert encoder.model.config._attn_implementation == implementation


@pytest.fixture(scope="module")
def bucketed_deberta(tmp_path_factory):
    """A tiny DeBERTa-v2 with 8 position buckets: log buckets from a
    distance of 4 on, as DeBERTaV3's 256 buckets from 128."""
    folder = tmp_path_factory.mktemp("deberta_buckets")
    tiny_models.build_tiny_deberta_v2(folder, TEXTS, position_buckets=8)
    return HFTextEncoder(str(folder), freeze="trainable", max_length=64)


@pytest.mark.parametrize("length", [3, 6, 12, 40])
def test_narrowed_relative_positions_give_the_same_outputs(
    bucketed_deberta, length
):
    """Cut to the positions a batch can reach, the table gives the outputs
    of the whole table, whether or not log buckets are reached."""
    encoder = bucketed_deberta.eval()
    torch.manual_seed(length)
    tokens = torch.randint(5, encoder.model.config.vocab_size, (2, length))
    lens = torch.tensor([1.0, 0.5])
    encoder.narrow_positions = False
    with torch.no_grad():
        whole = encoder(tokens, lens)
    encoder.narrow_positions = True
    with narrow_relative_positions(encoder.model, length) as span:
        pass
    with torch.no_grad():
        narrowed = encoder(tokens, lens)
    assert span is not None and span < 8  # narrowed below the 8 buckets
    torch.testing.assert_close(narrowed, whole, atol=1e-5, rtol=1e-5)


def test_narrowing_spans_the_farthest_reachable_bucket(bucketed_deberta):
    model = bucketed_deberta.model
    # 3 tokens reach distance 2 (span 3); 40 tokens distance 39, log bucket
    # ceil(log(39 / 4) / log(127 / 4) * 3) + 4 = 6 (span 7); 128 tokens
    # reach the farthest bucket, 7: the whole table
    with narrow_relative_positions(model, 3) as span:
        assert span == 3
        assert model.encoder.get_rel_embedding().shape[0] == 2 * 3
    assert model.encoder.get_rel_embedding().shape[0] == 2 * 8  # restored
    with narrow_relative_positions(model, 40) as span:
        assert span == 7
    with narrow_relative_positions(model, 128) as span:
        assert span is None


@pytest.mark.parametrize(
    "modality,source", [("audio", "fbank"), ("text", "hashing")]
)
def test_light_encoders_are_rebuilt_identically_whatever_the_global_seed(
    modality, source
):
    torch.manual_seed(0)
    first = build_encoder(modality, source, freeze="frozen")
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    second = build_encoder(modality, source, freeze="frozen")
    assert first.fingerprint() == second.fingerprint()
    # the caller's random state is left as it was
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_trainable_light_encoder_starts_from_the_runs_random_state():
    torch.manual_seed(0)
    first = build_encoder("audio", "fbank", freeze="trainable")
    torch.manual_seed(1)
    second = build_encoder("audio", "fbank", freeze="trainable")
    assert first.fingerprint() != second.fingerprint()
