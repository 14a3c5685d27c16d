"""A model reports and predicts only what it was trained for.

MMER's recipe trains the classes only (``w_valence = w_arousal = 0``):
its dimension heads exist but no loss ever trained them, so no test
result, sweep table, export, model card or prediction may show their
numbers. Its text encoder is frozen; with the light ``hashing`` encoder
(random weights, drawn with a fixed seed) the run must still export, and
its export predict what the run predicted on its test set.
"""

import csv
import json

import pytest
import soundfile
import torch
import yaml

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.experiments.aggregate import aggregate
from speechbrain_mtmm.experiments.reports import (
    NOT_TRAINED_NOTE,
    write_report,
)
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import (
    read_predictions,
    read_test_results,
    sweep_run_name,
    trained_dimensions,
)
from speechbrain_mtmm.sharing.export import read_model_config
from speechbrain_mtmm.system import PAPER_CONFIG
from speechbrain_mtmm.testing.recipes import recipe_command, run_recipe_command

DIMENSION_WORDS = ("valence", "arousal", "dominance", "CCC")
PROBS_TOL = 1e-4  # test_predictions.jsonl rounds probabilities to 5 places


@pytest.fixture(scope="module")
def classes_only(
    tmp_path_factory, synthetic_corpus, synthetic_prepared, recipe
):
    """MMER's recipe as written (classes only, text encoder frozen) with the
    light encoders, 2 epochs, as one run of a sweep folder; exported with
    its ONNX graphs."""
    sweep = tmp_path_factory.mktemp("classes_only")
    run = sweep / sweep_run_name("speaker", 1, 1)
    command = recipe_command(
        recipe,
        synthetic_corpus / "IEMOCAP_full_release",
        synthetic_prepared,
        run,
        "fbank",
        "hashing",
        {"number_of_epochs": 2, "d_model": 64, "n_heads": 4, "seed": 1},
        yaml_file="hparams/mmer.yaml",
    )
    run_recipe_command(recipe, command)
    model = sweep.parent / f"{sweep.name}_model"
    args = ["export", "--run", str(run), "--out", str(model), "--onnx"]
    return sweep, run, model, mtmm(args)


def test_a_classes_only_run_reports_no_dimension(classes_only):
    _, run, _, _ = classes_only
    results = read_test_results(run)
    assert {"WA", "UA", "macro_F1"} <= set(results)
    assert not [key for key in results if key.startswith("CCC")]
    row = read_predictions(run)[0]
    assert "pred_emo" in row
    assert not [key for key in row if key.endswith(("valence", "arousal"))]


def test_a_classes_only_sweep_aggregates_and_tables_no_dimension(
    classes_only,
):
    sweep, _, _, _ = classes_only
    results = aggregate(sweep, "speaker")
    assert results["metrics"] == ["WA", "UA", "macro_F1"]
    assert not [k for k in results["summary"]["all"] if k.startswith("CCC")]
    report = write_report(sweep, results).read_text()
    table = report.split("## Results")[1].split("##")[0]
    assert "| - | - |" in table and NOT_TRAINED_NOTE in table
    assert not (sweep / "dimensions.png").exists()


def test_an_mmer_run_with_a_frozen_light_text_encoder_exports(classes_only):
    _, run, model, exit_code = classes_only
    assert "text_freeze: frozen" in (run / "hyperparams.yaml").read_text()
    assert exit_code == 0
    assert (model / "system.ckpt").is_file()


def test_its_frozen_text_encoder_has_no_rate_and_no_optimizer_group(
    classes_only,
):
    _, run, _, _ = classes_only
    saved = sorted(run.glob("save/CKPT+*/optimizer.ckpt"))[-1]
    groups = torch.load(saved, weights_only=True)["param_groups"]
    assert [group["name"] for group in groups] == ["model", "audio_encoder"]
    epochs = [
        line
        for line in (run / "train_log.txt").read_text().splitlines()
        if line.startswith("epoch: ")
    ]
    assert len(epochs) == 2
    assert all("lr_audio_encoder: " in line for line in epochs)
    assert not [line for line in epochs if "lr_text_encoder" in line]


def test_its_export_predicts_its_test_predictions(
    classes_only, synthetic_prepared
):
    _, run, model, _ = classes_only
    rows = read_predictions(run)
    manifest = json.loads((synthetic_prepared / "iemocap.json").read_text())
    recognizer = MultimodalEmotionRecognizer.from_hparams(model)
    for row in rows[:6]:
        entry = manifest[row["id"]]
        result = recognizer.predict_file(entry["wav"], entry["text"])
        assert result["label"] == row["pred_emo"]
        for label, p in row["probs"].items():
            assert result["probs"][label] == pytest.approx(p, abs=PROBS_TOL)
        assert not [k for k in result if k.startswith(DIMENSION_WORDS)]


def test_its_onnx_graphs_have_no_dimension_output(classes_only):
    _, _, model, _ = classes_only
    info = json.loads((model / "onnx" / "onnx_info.json").read_text())
    assert list(info["outputs"]) == ["logits"]
    onnx = MultimodalEmotionRecognizer.from_onnx(model)
    result = onnx.predict_text("I can't believe it.")
    assert "label" in result
    assert not [k for k in result if k.startswith(DIMENSION_WORDS)]


def test_its_card_says_it_predicts_only_its_classes(classes_only):
    _, _, model, _ = classes_only
    card = (model / "README.md").read_text()
    body = card.split("---", 2)[2]
    first = body.split("One model reads")[1].split(". It was trained")[0]
    assert "predicts its emotion class" in first
    assert not [w for w in DIMENSION_WORDS if w in body], body[:600]


def test_its_predict_output_has_no_dimension_column(
    classes_only, tmp_path, capsys
):
    _, _, model, _ = classes_only
    wav = tmp_path / "a.wav"
    soundfile.write(wav, 0.1 * torch.randn(16000).numpy(), 16000)
    out = tmp_path / "out.csv"
    code = mtmm(
        [
            "predict",
            str(wav),
            "--text",
            "Fine.",
            "--model",
            str(model),
            "--format",
            "csv",
            "--output",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    with open(out, newline="") as fin:
        header = next(csv.reader(fin))
    assert "label" in header and "p_neu" in header
    assert not [c for c in header if c.startswith(DIMENSION_WORDS)]


def test_a_run_from_before_loss_weights_exports_with_the_runs_weights(
    tmp_path,
):
    """Runs made before model_config recorded its loss weights: the export
    takes them from the run's own w_* keys."""
    config = {**PAPER_CONFIG}
    del config["loss_weights"]
    hparams = {"w_ce": 1.0, "w_valence": 0.0, "w_arousal": 0.0}
    hparams["w_dominance"] = 0.0
    text = yaml.safe_dump({**hparams, "model_config": config})
    (tmp_path / "hyperparams.yaml").write_text(text)
    read = read_model_config(tmp_path)
    assert read["loss_weights"] == {
        "classes": 1.0,
        "valence": 0.0,
        "arousal": 0.0,
        "dominance": 0.0,
    }
    assert trained_dimensions(read) == []
