"""Ensembles of exported models: ``mtmm predict --model a --model b`` and
:class:`EnsembleRecognizer` average the members' probabilities and
dimensions (weighted), after checking that they predict the same outputs.

The two members are conftest's light run (fbank + hashing encoders, 1
epoch) exported here with its ONNX graphs, and conftest's tiny HF run
(HuBERT + DeBERTa-v2, 3 epochs, exported with ONNX graphs): two different
models of the same classes, dimensions and rating scale.
"""

import json
from types import SimpleNamespace

import pytest

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.inference.ensemble import (
    EnsembleError,
    EnsembleRecognizer,
)
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import rating_key

DIMENSIONS = ("valence", "arousal")
SCALE = (1, 5)
TOL = 1e-6
ROUNDED = 1e-4  # predict writes 5 decimals (ratings: x4 their error)


@pytest.fixture(scope="module")
def light_model(tmp_path_factory, light_run):
    """conftest's light run exported with its ONNX graphs."""
    out = tmp_path_factory.mktemp("ensemble") / "light_model"
    args = ["export", "--run", str(light_run.folder), "--out", str(out)]
    assert mtmm([*args, "--onnx"]) == 0
    return out


@pytest.fixture(scope="module")
def hf_model(tiny_hf_run):
    """conftest's tiny HF run, exported with its ONNX graphs."""
    return tiny_hf_run.model


@pytest.fixture(scope="module")
def members(light_model, hf_model):
    return [
        MultimodalEmotionRecognizer.from_hparams(light_model),
        MultimodalEmotionRecognizer.from_hparams(hf_model),
    ]


@pytest.fixture(scope="module")
def utterances(synthetic_prepared):
    """(wav, transcript) of four utterances of the synthetic corpus."""
    manifest = json.loads((synthetic_prepared / "iemocap.json").read_text())
    entries = sorted(manifest.items())[:4]
    return [(entry["wav"], entry["text"]) for _, entry in entries]


def weighted_mean(results, weights):
    """The hand-computed weighted mean of single-model predictions."""
    total = sum(weights)
    shares = [w / total for w in weights]
    labels = list(results[0]["probs"])
    probs = {
        label: sum(s * r["probs"][label] for s, r in zip(shares, results))
        for label in labels
    }
    mean = {"probs": probs, "label": max(labels, key=probs.get)}
    for name in DIMENSIONS:
        mean[name] = sum(s * r[name] for s, r in zip(shares, results))
        mean[rating_key(name, SCALE)] = SCALE[0] + mean[name] * (
            SCALE[1] - SCALE[0]
        )
    return mean


def assert_mean(row, expected, tol):
    assert row["label"] == expected["label"]
    assert row["probs"] == pytest.approx(expected["probs"], abs=tol)
    for name in (*DIMENSIONS, *(rating_key(d, SCALE) for d in DIMENSIONS)):
        assert row[name] == pytest.approx(expected[name], abs=tol), name


def predict_rows(capsys, *args):
    """The JSON rows of ``mtmm predict`` and its exit code."""
    code = mtmm(["predict", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def stub(labels=("neu", "hap", "sad", "ang"), scale=(1, 5), dims=2):
    """A loaded model as far as the ensemble's checks look at it."""
    config = {
        "labels": list(labels),
        "n_dims": dims,
        "rating_scale": list(scale),
    }
    return SimpleNamespace(
        labels=list(labels), system=SimpleNamespace(config=config)
    )


# ----------------------------------------------------------- the recognizer


def test_an_ensemble_of_one_equals_the_single_model(members, utterances):
    one = EnsembleRecognizer(members[:1])
    for wav, text in utterances:
        assert one.predict_file(wav, text) == members[0].predict_file(wav, text)


def test_an_ensemble_of_two_is_the_weighted_mean_of_its_models(
    members, utterances
):
    pair = EnsembleRecognizer(members, weights=[3.0, 1.0])
    for wav, text in utterances:
        singles = [m.predict_file(wav, text) for m in members]
        assert singles[0]["probs"] != pytest.approx(singles[1]["probs"])
        row = pair.predict_file(wav, text)
        assert_mean(row, weighted_mean(singles, [3.0, 1.0]), TOL)
        assert row["ensemble"] == 2 and row["path"] == "audio+text"


def test_equal_weights_are_the_default(members):
    text = "I got the job!"
    singles = [m.predict_text(text) for m in members]
    row = EnsembleRecognizer(members).predict_text(text)
    assert_mean(row, weighted_mean(singles, [1.0, 1.0]), TOL)


def test_a_missing_transcript_is_transcribed_once_for_every_member(
    members, utterances, monkeypatch
):
    heard = []

    def transcriber(wav):
        """Counts its calls; hears the same words every time."""
        heard.append(len(wav))
        return "I got the job!"

    monkeypatch.setattr(members[0], "_transcriber", transcriber)
    wav = utterances[0][0]
    row = EnsembleRecognizer(members).predict_file(wav)
    assert len(heard) == 1
    monkeypatch.setattr(members[0], "_transcriber", None)
    singles = [m.predict_file(wav, "I got the job!") for m in members]
    assert row["path"] == "audio+asr"
    assert row["text_used"] == singles[0]["text_used"]
    assert_mean(row, weighted_mean(singles, [1.0, 1.0]), TOL)


def test_members_with_other_classes_are_refused_naming_both():
    with pytest.raises(EnsembleError, match="^a and b cannot be averaged"):
        EnsembleRecognizer(
            [stub(), stub(labels=("neu", "sad", "hap", "ang"))],
            names=["a", "b"],
        )


def test_members_with_another_rating_scale_are_refused_naming_both():
    with pytest.raises(EnsembleError, match="a and c .*rating scale"):
        EnsembleRecognizer(
            [stub(), stub(), stub(scale=(1, 7))], names=["a", "b", "c"]
        )


def test_members_with_other_dimensions_are_refused_naming_both():
    with pytest.raises(EnsembleError, match="a and b .*dimensions"):
        EnsembleRecognizer([stub(), stub(dims=3)], names=["a", "b"])


def test_a_weight_count_that_is_not_the_model_count_is_refused():
    with pytest.raises(EnsembleError, match="3 weights for 2 models"):
        EnsembleRecognizer([stub(), stub()], weights=[1, 1, 1])


# ------------------------------------------------------------ mtmm predict


def test_predict_with_one_model_writes_single_model_rows(
    capsys, light_model, utterances
):
    wav, text = utterances[0]
    args = ["--model", str(light_model), wav, "--text", text]
    code, rows = predict_rows(capsys, *args)
    assert code == 0 and "ensemble" not in rows[0]
    single = MultimodalEmotionRecognizer.from_hparams(light_model)
    assert_mean(rows[0], single.predict_file(wav, text), ROUNDED)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_with_two_models_writes_their_weighted_mean(
    capsys, light_model, hf_model, utterances, backend
):
    wavs = [wav for wav, _ in utterances]
    common = [*wavs, "--backend", backend]
    singles = [
        predict_rows(capsys, "--model", str(model), *common)[1]
        for model in (light_model, hf_model)
    ]
    code, rows = predict_rows(
        capsys,
        "--model",
        str(light_model),
        "--model",
        str(hf_model),
        *common,
        "--weights",
        "0.6",
        "0.4",
    )
    assert code == 0 and len(rows) == len(wavs)
    for row, *pair in zip(rows, *singles):
        assert row["file"] == pair[0]["file"] and row["ensemble"] == 2
        assert_mean(row, weighted_mean(pair, [0.6, 0.4]), ROUNDED)


def test_predict_refuses_a_weight_count_that_is_not_the_model_count(
    capsys, light_model, utterances
):
    code = mtmm(
        ["predict", "--model", str(light_model), utterances[0][0]]
        + ["--weights", "0.6", "0.4"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "mtmm predict: error: 2 weights for 1 models: give one weight per "
        "--model"
    )


def test_predict_csv_rows_of_an_ensemble_say_so(
    capsys, light_model, hf_model, utterances
):
    args = ["predict", "--model", str(light_model), "--model", str(hf_model)]
    assert mtmm([*args, utterances[0][0], "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "ensemble" in header.split(",")
    assert dict(zip(header.split(","), row.split(",")))["ensemble"] == "2"


def test_a_sweep_export_folder_stands_for_all_its_models(
    tmp_path, capsys, light_model, hf_model, utterances
):
    """The layout of ``mtmm export --sweep``: <protocol>_fold<k>/seed<s>/."""
    sweep = tmp_path / "models"
    for fold, model in ((1, light_model), (2, hf_model)):
        (sweep / f"speaker_fold{fold}").mkdir(parents=True)
        (sweep / f"speaker_fold{fold}" / "seed1").symlink_to(model)
    wav = utterances[0][0]
    code, rows = predict_rows(capsys, "--model", str(sweep), wav)
    _, expected = predict_rows(
        capsys, "--model", str(light_model), "--model", str(hf_model), wav
    )
    assert code == 0 and rows == expected and rows[0]["ensemble"] == 2
