"""Beyond IEMOCAP: the IEMOCAP recipe on a corpus prepared from a CSV
manifest, and the MSP-Podcast recipe on a synthetic release (train, select
on Development, test on Test1 and Test2, submission files for Test3)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from speechbrain_mtmm.data.csv_corpus import prepare_csv
from speechbrain_mtmm.data.folds import read_folds
from speechbrain_mtmm.data.msp_podcast import CLASSES
from speechbrain_mtmm.data.synthetic_csv import (
    CORPUS_DIRNAME,
    generate_synthetic_csv_corpus,
)
from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME,
    generate_synthetic_msp_podcast,
)
from speechbrain_mtmm.run_folder import read_predictions, read_test_results
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV, tiny_overrides
from speechbrain_mtmm.training.hparams import format_override

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
IEMOCAP_YAML = (
    RECIPES / "IEMOCAP" / "multimodal_emotion" / "hparams" / "iemocap.yaml"
)


def run_recipe(name, yaml, overrides):
    """Runs ``recipes/<name>/multimodal_emotion/train.py`` at toy size
    (:func:`tiny_overrides`) with light encoders; returns the process."""
    settings = tiny_overrides()
    settings.update(
        audio_source="fbank", text_source="hashing", number_of_epochs=2
    )
    settings.update(device="cpu", **overrides)
    command = [
        sys.executable,
        "train.py",
        f"hparams/{yaml}",
        *(f"--{k}={format_override(v)}" for k, v in settings.items()),
    ]
    result = subprocess.run(
        command,
        cwd=RECIPES / name / "multimodal_emotion",
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csv_run")
    generate_synthetic_csv_corpus(tmp, n_speakers=5, per_speaker=6)
    prepared = tmp / "prepared"
    prepare_csv(
        tmp / CORPUS_DIRNAME / "corpus.csv",
        prepared,
        folds=5,
        scale=(1, 5),
        progress=False,
    )
    output = tmp / "run"
    # as a user would: the prepared folder is the data folder, nothing else
    run_recipe(
        "IEMOCAP",
        "iemocap.yaml",
        {"data_folder": prepared, "fold": 2, "output_folder": output},
    )
    return prepared, output


def test_the_iemocap_recipe_takes_labels_from_a_csv_corpus(csv_run):
    results = read_test_results(csv_run[1])
    assert results["corpus"] == "csv"
    assert results["labels"] == ["angry", "happy", "neutral", "sad"]


def test_the_iemocap_recipe_tests_a_csv_fold_on_its_test_speakers(csv_run):
    prepared, output = csv_run
    test_speakers = read_folds(prepared)["speaker"][2]["test"]
    rows = read_predictions(output)
    assert sorted({row["speaker"] for row in rows}) == test_speakers
    with open(prepared / "manifest.json", encoding="utf-8") as fin:
        manifest = json.load(fin)
    expected = {u for u, e in manifest.items() if e["speaker"] in test_speakers}
    assert {row["id"] for row in rows} == expected
    for row in rows:
        assert row["valence"] == pytest.approx(manifest[row["id"]]["valence"])


@pytest.fixture(scope="module")
def msp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("msp_run")
    written = generate_synthetic_msp_podcast(tmp, n_utterances=120, seed=1)
    output = tmp / "run"
    result = run_recipe(
        "MSP-Podcast",
        "msp_podcast.yaml",
        {
            "data_folder": tmp / RELEASE_DIRNAME,
            "prepare_folder": tmp / "prepared",
            "output_folder": output,
        },
    )
    return tmp, written, output, result


def test_the_msp_recipe_reports_the_challenge_metrics_on_test1_and_test2(
    msp_run,
):
    results = read_test_results(msp_run[2])
    assert results["corpus"] == "msp-podcast"
    assert set(results["test_sets"]) == {"Test1", "Test2"}
    keys = ("macro_F1", "micro_F1", "UA", "CCC_arousal", "CCC_valence")
    for scores in results["test_sets"].values():
        for key in (*keys, "CCC_dominance"):
            assert 0.0 <= abs(scores[key]) <= 1.0, key
        assert scores["micro_F1"] == scores["WA"]
    assert results["test_sets"]["Test1"]["macro_F1"] == results["macro_F1"]


def test_the_msp_recipe_writes_each_test_set_with_its_own_utterances(msp_run):
    _, written, output, _ = msp_run
    for name, split in (("test", "Test1"), ("test2", "Test2")):
        path = output / f"{name}_predictions.jsonl"
        with open(path, encoding="utf-8") as fin:
            rows = [json.loads(line) for line in fin]
        expected = {u for u, w in written.items() if w["split"] == split}
        assert {row["id"] for row in rows} == expected


def test_o_and_x_utterances_are_tested_on_their_dimensions_only(msp_run):
    _, written, output, _ = msp_run
    rows = {row["id"]: row for row in read_predictions(output)}
    no_class = [u for u in rows if written[u]["code"] in ("O", "X")]
    assert no_class, "the synthetic Test1 should hold O or X utterances"
    for utt in no_class:
        assert rows[utt]["emo"] is None
        # the 1-7 ratings come back as written
        assert rows[utt]["arousal"] == pytest.approx(written[utt]["arousal"])
    results = read_test_results(output)
    assert results["n"] == len(rows) - len(no_class)


def test_class_weights_are_n_over_8_n_c_of_the_train_split(msp_run):
    _, written, _, result = msp_run
    counts = Counter(
        CLASSES[w["code"]]
        for w in written.values()
        if w["split"] == "Train" and w["code"] in CLASSES
    )
    total = sum(counts.values())
    line = next(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "Class weights (from the training counts)" in line
    )
    logged = json.loads(line.split(": ", 1)[1].replace("'", '"'))
    for label, weight in logged.items():
        assert weight == pytest.approx(total / (8 * counts[label]), abs=1e-4)


MTMM = [sys.executable, "-m", "speechbrain_mtmm"]


@pytest.fixture(scope="module")
def msp_export(msp_run):
    tmp, _, output, _ = msp_run
    exported = tmp / "export"
    subprocess.run(
        [*MTMM, "export", "--run", str(output), "--out", str(exported)],
        check=True,
        capture_output=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    return exported


@pytest.mark.slow
def test_the_model_card_of_an_msp_run_names_its_corpus_and_scale(
    msp_export,
):
    card = (msp_export / "README.md").read_text()
    assert "Trained on MSP-Podcast" in card
    assert "1-7 scale" in card
    assert "IEMOCAP" not in card
    assert "the release's split" in card


@pytest.mark.slow
def test_predict_writes_the_challenge_submission_files_for_test3(
    msp_run, msp_export
):
    tmp, written, _, _ = msp_run
    mtmm = MTMM
    env = {**os.environ, **OFFLINE_ENV}
    exported = msp_export
    test3 = sorted(u for u, w in written.items() if w["split"] == "Test3")
    audios = tmp / RELEASE_DIRNAME / "Audios"
    submission = tmp / "submission"
    result = subprocess.run(
        [*mtmm, "predict", "--model", str(exported), "--format", "msp-podcast"]
        + ["--output", str(submission)]
        + [str(audios / f"{u}.wav") for u in reversed(test3)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (submission / "categorical.csv").read_text().splitlines()
    assert lines[0] == "FileName,EmoClass"
    assert [line.split(",")[0] for line in lines[1:]] == [
        f"{u}.wav" for u in test3
    ]
    assert {line.split(",")[1] for line in lines[1:]} <= set(CLASSES)
    lines = (submission / "attributes.csv").read_text().splitlines()
    assert lines[0] == "FileName,EmoAct,EmoVal,EmoDom"
    for line in lines[1:]:
        assert all(1.0 <= float(v) <= 7.0 for v in line.split(",")[1:])


@pytest.mark.slow
def test_the_msp_recipe_trains_from_the_feature_cache_test2_included(msp_run):
    tmp, written, _, _ = msp_run
    output = tmp / "cached_run"
    result = run_recipe(
        "MSP-Podcast",
        "msp_podcast.yaml",
        {
            "data_folder": tmp / RELEASE_DIRNAME,
            "prepare_folder": tmp / "prepared",
            "output_folder": output,
            "number_of_epochs": 1,
            "freeze_policy": "frozen",
            "feature_cache": True,
        },
    )
    labelled = sum(w["split"] != "Test3" for w in written.values())
    log = result.stdout + result.stderr
    assert f"computing {labelled} of {labelled} utterances" in log
    # utterances without a transcript are cached as the empty text
    assert any(w["text"] is None for w in written.values())
    assert "test2_predictions.jsonl" in {p.name for p in output.iterdir()}


@pytest.mark.slow
def test_a_sweep_over_a_csv_corpus_reports_and_reruns_without_refusal(
    tmp_path,
):
    # no speaker column: utterance-level folds, speakers unknown
    generate_synthetic_csv_corpus(
        tmp_path, n_speakers=4, per_speaker=8, speakers=False
    )
    prepared = tmp_path / "prepared"
    prepare_csv(
        tmp_path / CORPUS_DIRNAME / "corpus.csv",
        prepared,
        folds=4,
        scale=(1, 5),
        utterance_folds=True,
        progress=False,
    )
    settings = tiny_overrides()
    settings.update(audio_source="fbank", text_source="hashing")
    settings.update(number_of_epochs=1, device="cpu", data_folder=prepared)
    command = [
        sys.executable,
        "-m",
        "speechbrain_mtmm",
        "cv",
        str(IEMOCAP_YAML),
        "--protocol",
        "utterance",
        "--folds",
        "1",
        "--seeds",
        "1",
        "--output",
        str(tmp_path / "cv"),
        *(f"--{k}={format_override(v)}" for k, v in settings.items()),
    ]
    env = {**os.environ, **OFFLINE_ENV}
    first = subprocess.run(command, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "cv" / "report.md").is_file()
    # the rerun finds the run made with the same settings (those the
    # prepared folder implies included) and does not train it again
    second = subprocess.run(command, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 of 1 runs already complete" in second.stderr


@pytest.mark.slow
def test_the_demo_trains_the_iemocap_recipe_on_a_csv_corpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "speechbrain_mtmm", "demo", "--corpus", "csv"]
        + ["--light", "--size", "tiny", "--out", str(tmp_path)],
        cwd=RECIPES.parent,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    results = read_test_results(tmp_path / "csv" / "run")
    assert results["corpus"] == "csv"
    assert "confusion (rows true, columns predicted)" in result.stdout
    assert f"test utterances: {results['n']}" in result.stdout


@pytest.mark.slow
def test_the_submission_files_can_come_from_an_ensemble(msp_run, msp_export):
    """Two copies of one model average to that model: the ensemble's
    files equal the single model's, byte for byte."""
    tmp, written, _, _ = msp_run
    env = {**os.environ, **OFFLINE_ENV}
    test3 = sorted(u for u, w in written.items() if w["split"] == "Test3")
    audios = [str(tmp / RELEASE_DIRNAME / "Audios" / f"{u}.wav") for u in test3]
    folders = {}
    for name, models in (("single", 1), ("ensemble", 2)):
        folders[name] = tmp / f"submission_{name}"
        result = subprocess.run(
            [*MTMM, "predict", "--format", "msp-podcast"]
            + ["--model", str(msp_export)] * models
            + ["--output", str(folders[name]), *audios],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble of 2 models" in result.stderr
    for file in ("categorical.csv", "attributes.csv"):
        single = (folders["single"] / file).read_text()
        assert (folders["ensemble"] / file).read_text() == single, file
