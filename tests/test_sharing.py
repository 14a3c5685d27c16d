"""Sharing a trained model: the model card, sweep exports, ONNX graphs.

One run with tiny random HF encoders (HuBERT + DeBERTa-v2) trained on the
synthetic corpus and exported with ``--onnx --int8`` (conftest's
``tiny_hf_run``, shared with the other modules that test it): the ONNX
backend must give the PyTorch backend's probabilities and dimensions.
"""

import json
import shutil

import pytest
import yaml

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.experiments.reports import format_score
from speechbrain_mtmm.inference.onnx_runtime import (
    ONNX_FOLDER,
    OnnxBackendError,
)
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import read_predictions, read_test_results
from speechbrain_mtmm.sharing.export import record_digests

ONNX_TOL = 1e-4  # probabilities and 0-1 dimensions, fp32 graphs


@pytest.fixture(scope="module")
def onnx_export(tiny_hf_run):
    """(run folder, model folder): tiny HF encoders, exported with
    ``mtmm export --onnx --int8``, the encoder folders then deleted, as a
    user's would be (conftest's ``tiny_hf_run``)."""
    return tiny_hf_run.run, tiny_hf_run.model


@pytest.fixture(scope="module")
def test_files(onnx_export, synthetic_prepared):
    """(wav, transcript) of the run's test utterances."""
    with open(synthetic_prepared / "iemocap.json") as fin:
        manifest = json.load(fin)
    rows = read_predictions(onnx_export[0])
    return [(manifest[r["id"]]["wav"], manifest[r["id"]]["text"]) for r in rows]


def front_matter(card):
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_an_export_carries_a_hub_ready_model_card(onnx_export):
    run, model = onnx_export
    card = (model / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "speechbrain"
    assert meta["datasets"] == ["iemocap"]
    assert "speech-emotion-recognition" in meta["tags"]
    assert meta["license"] == "other"  # for the publisher to set


def test_the_model_card_states_the_run_test_metrics_with_n(onnx_export):
    run, model = onnx_export
    card = (model / "README.md").read_text()
    results = read_test_results(run)
    row = "| " + " | ".join(
        [str(results["n"])]
        + [
            format_score(key, results[key])
            for key in ("WA", "UA", "macro_F1", "CCC_valence", "CCC_arousal")
        ]
    )
    assert row in card
    speakers = sorted({r["speaker"] for r in read_predictions(run)})
    assert f"speaker fold 1 (speakers {', '.join(speakers)})" in card


def test_the_model_card_says_how_to_use_it_and_what_to_fill(onnx_export):
    _, model = onnx_export
    card = (model / "README.md").read_text()
    assert "MultimodalEmotionRecognizer.from_hparams(" in card
    assert "mtmm predict --model" in card
    assert "to be filled by the publisher" in card
    assert "Intended use and limitations" in card
    assert "`neu` (neutral)" in card


def test_onnx_predictions_equal_pytorch_ones(onnx_export, test_files):
    _, model = onnx_export
    torch_model = MultimodalEmotionRecognizer.from_hparams(model)
    onnx_model = MultimodalEmotionRecognizer.from_onnx(model)
    for wav, text in test_files:
        for given in (text, None):  # audio+text, audio-only
            expected = torch_model.predict_file(wav, given)
            got = onnx_model.predict_file(wav, given)
            assert got["path"] == expected["path"]
            for label, p in expected["probs"].items():
                assert got["probs"][label] == pytest.approx(p, abs=ONNX_TOL)
            for dim in ("valence", "arousal"):
                assert got[dim] == pytest.approx(expected[dim], abs=ONNX_TOL)


def test_int8_graphs_predict_valid_probabilities(onnx_export, test_files):
    _, model = onnx_export
    int8 = MultimodalEmotionRecognizer.from_onnx(model, int8=True)
    for wav, text in test_files:
        result = int8.predict_file(wav, text)
        assert sum(result["probs"].values()) == pytest.approx(1, abs=1e-5)
        assert 1 <= result["valence_1to5"] <= 5


def test_loading_onnx_runs_nothing_of_the_yaml(onnx_export, tmp_path):
    _, model = onnx_export
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    marker = tmp_path / "ran"
    with open(copy / "hyperparams.yaml", "a") as fout:
        fout.write(f"\nevil: !apply:pathlib.Path.touch ['{marker}']\n")
    record_digests(copy)  # as if exported so
    MultimodalEmotionRecognizer.from_onnx(copy)
    assert not marker.exists()


def test_a_changed_onnx_graph_is_refused_naming_it(onnx_export, tmp_path):
    _, model = onnx_export
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    graph = copy / ONNX_FOLDER / "head.onnx"
    graph.write_bytes(graph.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(OnnxBackendError, match=f"^{graph}: missing or changed"):
        MultimodalEmotionRecognizer.from_onnx(copy)


def test_predict_with_the_onnx_backend_matches_pytorch(
    onnx_export, test_files, tmp_path
):
    _, model = onnx_export
    wav, text = test_files[0]
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.json"
        args = ["predict", "--model", str(model), wav, "--text", text]
        assert mtmm([*args, "--backend", backend, "--output", str(out)]) == 0
        outputs[backend] = json.loads(out.read_text().splitlines()[0])
    assert outputs["onnx"]["label"] == outputs["torch"]["label"]
    for label, p in outputs["torch"]["probs"].items():
        assert outputs["onnx"]["probs"][label] == pytest.approx(p, abs=1e-4)


def test_an_onnx_export_without_a_rating_scale_reads_as_1_to_5(
    onnx_export, test_files, tmp_path
):
    _, model = onnx_export
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    hparams = copy / "hyperparams.yaml"
    lines = hparams.read_text().splitlines(keepends=True)
    hparams.write_text("".join(x for x in lines if "rating_scale" not in x))
    record_digests(copy)  # as if exported so
    wav, text = test_files[0]
    result = MultimodalEmotionRecognizer.from_onnx(copy).predict_file(wav, text)
    assert result["valence_1to5"] == pytest.approx(
        1 + 4 * result["valence"], abs=1e-6
    )


def test_export_with_onnx_prints_no_third_party_notice(tiny_hf_run):
    """``mtmm export --onnx --int8`` printed transformers' deprecation, the
    ONNX optimizer's chatter and onnxruntime's quantizer advice (with a
    protobuf dump) on every export: none of it is left (quiet.py)."""
    for notice in (
        "FutureWarning",
        "gradient_checkpointing_disable",
        "Skipping constant folding",
        "Attribute type is ambiguous",
        "pre-processing before quantization",
        "unsupported type to quantize",
        "torchvision is not available",
    ):
        assert notice not in tiny_hf_run.export_stderr, (
            tiny_hf_run.export_stderr
        )
