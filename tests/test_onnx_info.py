"""``onnx_info.json`` is enough to run an export without this package.

One run with tiny random HF encoders (HuBERT + DeBERTa-v2) trained on the
synthetic corpus and exported with ``--onnx --int8`` (conftest's
``tiny_hf_run``, shared with the other modules that test it).
The reference client ``docs/onnx_client.py`` (numpy, onnxruntime,
soundfile, transformers' ``AutoTokenizer``; every name it uses read from
``onnx_info.json``) must give the PyTorch recognizer's probabilities and
dimensions for audio+text, audio-only, text-only and long (windowed)
audio. A light fbank/hashing model, exported untrained, checks the
description of the hashing tokenizer the same way.
"""

import copy
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import yaml

from speechbrain_mtmm import MultimodalEmotionSystem
from speechbrain_mtmm.inference.onnx_runtime import OnnxBackendError
from speechbrain_mtmm.inference.recognizer import (
    MultimodalEmotionRecognizer,
    plain_hparams,
)
from speechbrain_mtmm.run_folder import read_predictions, read_test_results
from speechbrain_mtmm.sharing.onnx_export import export_onnx
from speechbrain_mtmm.system import PAPER_CONFIG

TOL = 1e-4  # probabilities and 0-1 dimensions, fp32 graphs
CLIENT = Path(__file__).resolve().parents[1] / "docs" / "onnx_client.py"


def load_client():
    """The reference client, imported from its file."""
    spec = importlib.util.spec_from_file_location("onnx_client", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client_module = load_client()


@pytest.fixture(scope="module")
def export(tiny_hf_run):
    """(run folder, model folder): tiny HF encoders,
    ``mtmm export --onnx --int8`` (conftest's ``tiny_hf_run``)."""
    return tiny_hf_run.run, tiny_hf_run.model


@pytest.fixture(scope="module")
def info(export):
    return json.loads((export[1] / "onnx" / "onnx_info.json").read_text())


@pytest.fixture(scope="module")
def client(export):
    return client_module.OnnxEmotionClient(export[1] / "onnx")


@pytest.fixture(scope="module")
def recognizer(export):
    """The PyTorch recognizer: the reference."""
    return MultimodalEmotionRecognizer.from_hparams(export[1])


@pytest.fixture(scope="module")
def utterances(export, synthetic_prepared):
    """(wav path, transcript) of the run's test utterances."""
    with open(synthetic_prepared / "iemocap.json") as fin:
        manifest = json.load(fin)
    rows = read_predictions(export[0])
    return [(manifest[r["id"]]["wav"], manifest[r["id"]]["text"]) for r in rows]


def assert_same(got, expected, scale=(1.0, 5.0)):
    """The client's prediction equals the recognizer's."""
    assert got["path"] == expected["path"]
    assert got["label"] == expected["label"]
    assert got["probs"] == pytest.approx(expected["probs"], abs=TOL)
    low, high = scale
    tag = f"{low:g}to{high:g}"
    for name in ("valence", "arousal", "dominance"):
        if name in expected:
            assert got[name] == pytest.approx(expected[name], abs=TOL)
            assert got[f"{name}_rating"] == pytest.approx(
                expected[f"{name}_{tag}"], abs=TOL * (high - low)
            )


def test_a_client_of_onnx_info_alone_predicts_audio_and_text_as_pytorch(
    client, recognizer, utterances
):
    for wav, text in utterances:
        audio = client_module.read_wav(wav, client.sample_rate)
        got = client.predict(audio, text)
        assert_same(got, recognizer.predict_file(wav, text))


def test_a_client_of_onnx_info_alone_predicts_audio_only_as_pytorch(
    client, recognizer, utterances
):
    for wav, _ in utterances:
        audio = client_module.read_wav(wav, client.sample_rate)
        got = client.predict(audio, None)
        assert_same(got, recognizer.predict_file(wav, None))


def test_a_client_of_onnx_info_alone_predicts_text_only_as_pytorch(
    client, recognizer, utterances
):
    for _, text in utterances:
        assert_same(client.predict(None, text), recognizer.predict_text(text))


def test_a_client_windows_long_audio_as_pytorch(
    client, recognizer, utterances, info
):
    wav, text = utterances[0]
    audio = client_module.read_wav(wav, client.sample_rate)
    limit = info["long_audio"]["max_audio_seconds"] * client.sample_rate
    long = np.tile(audio, int(2.5 * limit / len(audio)) + 1)
    got = client.predict(long, text)
    expected = recognizer.predict_batch(
        torch.from_numpy(long)[None], None, [text]
    )
    assert got["windows"] == expected[0]["windows"] == 3
    assert_same(got, expected[0])


def test_onnx_info_describes_each_graph_as_the_graph_declares_it(export, info):
    dtypes = {"tensor(float)": "float32", "tensor(int64)": "int64"}

    def declared(values):
        return [
            {
                "name": v.name,
                "dtype": dtypes[v.type],
                "shape": [d if d is not None else "?" for d in v.shape],
            }
            for v in values
        ]

    assert set(info["graphs"]) == {"audio_encoder", "text_encoder", "head"}
    for graph in info["graphs"].values():
        for key in ("file", "int8_file"):
            session = onnxruntime.InferenceSession(
                str(export[1] / "onnx" / graph[key]),
                providers=["CPUExecutionProvider"],
            )
            assert graph["inputs"] == declared(session.get_inputs())
            assert graph["outputs"] == declared(session.get_outputs())


def test_onnx_info_states_what_the_outputs_mean(export, info):
    config = plain_hparams(export[1])["model_config"]
    labels = (export[1] / "labels.txt").read_text().split()
    head = {o["name"]: o["shape"] for o in info["graphs"]["head"]["outputs"]}
    assert info["outputs"]["logits"]["labels"] == labels
    assert head["logits"] == ["batch", len(labels)]
    assert info["outputs"]["dims"]["names"] == ["valence", "arousal"]
    assert head["dims"] == ["batch", 2]
    assert info["outputs"]["dims"]["rating_scale"] == config["rating_scale"]
    assert (
        info["long_audio"]["max_audio_seconds"] == config["max_audio_seconds"]
    )
    text = info["modalities"]["text"]["tokenizer"]
    assert text["max_length"] == text["call"]["max_length"]
    assert text["max_length"] == config["text"]["max_length"]
    assert info["modalities"]["audio"]["sample_rate"] == config["sample_rate"]


def test_the_missing_modality_input_has_the_head_input_width(info):
    inputs = {i["name"]: i["shape"] for i in info["graphs"]["head"]["inputs"]}
    for modality in ("audio", "text"):
        spec = info["modalities"][modality]
        width = inputs[spec["head_inputs"]["feats"]][-1]
        assert spec["feature_size"] == width
    missing = info["missing_modality"]
    assert (missing["feats"]["value"], missing["lens"]["value"]) == (0.0, 1.0)


def test_onnx_info_digests_cover_every_other_file_of_the_folder(export, info):
    folder = export[1] / "onnx"
    files = {
        p.relative_to(folder).as_posix(): hashlib.sha256(
            p.read_bytes()
        ).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "onnx_info.json"
    }
    assert any(name.startswith("tokenizer/") for name in files)
    assert any(name.startswith("int8/") for name in files)
    assert info["sha256"] == files


def test_a_changed_tokenizer_file_is_refused_naming_it(export, tmp_path):
    copy_ = tmp_path / "model"
    shutil.copytree(export[1], copy_)
    changed = copy_ / "onnx" / "tokenizer" / "tokenizer_config.json"
    changed.write_text(changed.read_text().replace("128", "12"))
    message = f"^{changed}: missing or changed since the export"
    with pytest.raises(OnnxBackendError, match=message):
        MultimodalEmotionRecognizer.from_onnx(copy_)


def test_a_tokenizer_file_added_after_the_export_is_refused_naming_it(
    export, tmp_path
):
    copy_ = tmp_path / "model"
    shutil.copytree(export[1], copy_)
    added = copy_ / "onnx" / "tokenizer" / "added_tokens.json"
    added.write_text('{"[NEW]": 9999}')
    with pytest.raises(OnnxBackendError, match=f"^{added}: not covered by"):
        MultimodalEmotionRecognizer.from_onnx(copy_)


def test_an_export_card_indexes_the_run_test_results(export):
    run, model = export
    card = (model / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    results = read_test_results(run)
    [entry] = meta["model-index"]
    [headline, *_] = entry["results"]
    assert headline["dataset"] == {
        "name": "IEMOCAP",
        "type": "iemocap",
        "config": "speaker_fold1",
        "split": "test",
    }
    values = {m["name"]: m["value"] for m in headline["metrics"]}
    assert values["WA (accuracy)"] == results["WA"]
    assert values["UA (unweighted mean recall)"] == results["UA"]
    assert values["macro-F1"] == results["macro_F1"]
    assert values["CCC valence"] == results["CCC_valence"]
    assert values["CCC arousal"] == results["CCC_arousal"]
    none = results["conditions"]["none"]
    suffix = ", no transcript (audio only)"
    assert values["WA (accuracy)" + suffix] == none["WA"]
    assert values["CCC valence" + suffix] == none["CCC_valence"]
    assert meta["tags"][-1] == "onnx"
    assert "base_model" not in meta  # local folders


@pytest.fixture(scope="module")
def light_export(tmp_path_factory):
    """An untrained fbank/hashing model with 3 dimensions on 1-7, its
    graphs exported (no training: the graphs only have to match it)."""
    config = copy.deepcopy(PAPER_CONFIG)
    config.update(
        d_model=16,
        n_heads=2,
        refinement_ffn=32,
        bridge_tokens=4,
        n_dims=3,
        rating_scale=[1.0, 7.0],
        max_audio_seconds=1.0,
        audio={"source": "fbank", "layers": [-1], "light_size": 16},
        text={
            "source": "hashing",
            "layers": [-1],
            "max_length": 8,
            "light_size": 16,
        },
    )
    torch.manual_seed(0)
    system = MultimodalEmotionSystem(config, freeze="frozen").eval()
    folder = tmp_path_factory.mktemp("light_onnx")
    export_onnx(folder, system)
    recognizer = MultimodalEmotionRecognizer(
        {"system": system},
        {"max_audio_seconds": 1.0, "long_audio": "chunk"},
        run_opts={"device": "cpu"},
    )
    return folder, recognizer


def test_a_client_tokenizes_with_the_hashing_rule_of_onnx_info(light_export):
    folder, recognizer = light_export
    client = client_module.OnnxEmotionClient(folder / "onnx")
    text = "Well, THAT went better than I'd hoped... really, much better!"
    expected = recognizer.system.text_encoder.tokenize(text).tolist()
    assert client.tokenize(text) == expected
    assert len(expected) == 8  # truncated to max_length
    assert_same(
        client.predict(None, text), recognizer.predict_text(text), (1, 7)
    )


def test_a_light_model_client_predicts_windowed_audio_as_pytorch(
    light_export,
):
    folder, recognizer = light_export
    client = client_module.OnnxEmotionClient(folder / "onnx")
    wav = 0.1 * torch.randn(40000, generator=torch.Generator().manual_seed(1))
    got = client.predict(wav.numpy(), "I got the job!")
    expected = recognizer.predict_batch(wav[None], None, ["I got the job!"])
    assert got["windows"] == 3
    assert_same(got, expected[0], (1, 7))
