"""The cross-validation runner and the ablation table command.

Real sweeps use the synthetic corpus, the light from-scratch encoders and
one epoch; the runner's bookkeeping (failures, GPUs) is checked with a fake
recipe whose ``train.py`` only writes result files.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.experiments.reports import results_table
from speechbrain_mtmm.experiments.sweep import plan_runs
from speechbrain_mtmm.run_folder import write_run_config
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV, recipe_command
from speechbrain_mtmm.training.run import run_settings

RECIPE = (
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)
YAML = RECIPE / "hparams" / "iemocap.yaml"
OFFLINE = {
    k: OFFLINE_ENV[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
}

# A recipe that trains nothing: it writes a one-utterance result (or fails
# for the folds listed in --fail_folds) and the GPU it was given
FAKE_TRAIN = """
import json, os, sys
args = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
out = args["output_folder"]
print("fake run, fold", args["fold"])
if args["fold"] in args.get("fail_folds", "").split(","):
    sys.exit("fake failure")
gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
open(os.path.join(out, "gpu.txt"), "w").write(gpu)
row = {"id": "u", "emo": "neu", "pred_emo": "neu", "valence": 3.0,
       "pred_valence": 3.0, "arousal": 3.0, "pred_arousal": 3.0,
       "speaker": "Ses01F", "improvised": True}
open(os.path.join(out, "test_predictions.jsonl"), "w").write(json.dumps(row))
results = {"WA": 1.0, "UA": 1.0, "macro_F1": 1.0, "CCC_valence": 0.0,
           "CCC_arousal": 0.0, "confusion": [[1, 0], [0, 0]],
           "labels": ["neu", "hap"], "n": 1}
json.dump(results, open(os.path.join(out, "test_results.json"), "w"))
"""


def tiny_overrides(corpus, prepared, **extra):
    """The --key=value overrides of a 1-epoch light-encoder run."""
    command = recipe_command(
        RECIPE,
        corpus / "IEMOCAP_full_release",
        prepared,
        "unused",
        "fbank",
        "hashing",
        {"number_of_epochs": 1, **extra},
    )
    return [a for a in command[3:] if not a.startswith("--output_folder=")]


def sweep_args(output, corpus, prepared):
    return [
        str(YAML),
        "--protocol",
        "speaker",
        "--folds",
        "1",
        "2",
        "--seeds",
        "1",
        "2",
        "--jobs",
        "2",
        "--output",
        str(output),
        *tiny_overrides(corpus, prepared),
    ]


def read_json(path):
    with open(path) as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, synthetic_corpus, synthetic_prepared):
    """2 speaker folds x 2 seeds, 2 at a time, through the command line."""
    output = tmp_path_factory.mktemp("cv") / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_mtmm",
            "cv",
            *sweep_args(output, synthetic_corpus, synthetic_prepared),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE),
    )
    return output, result


@pytest.mark.slow
def test_a_sweep_exports_every_run_with_its_cross_validation_card(
    sweep, tmp_path
):
    output, result = sweep
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "models"
    assert mtmm(["export", "--sweep", str(output), "--out", str(out)]) == 0
    members = sorted(
        p.relative_to(out).as_posix() for p in out.glob("speaker_fold*/seed*")
    )
    assert members == [
        f"speaker_fold{f}/seed{s}" for f in (1, 2) for s in (1, 2)
    ]
    for member in members:
        assert (out / member / "system.ckpt").is_file()
        assert "## Evaluation" in (out / member / "README.md").read_text()
    card = (out / "README.md").read_text()
    results = read_json(output / "cv_results.json")
    assert results_table("this configuration", results) in card
    assert "| `speaker_fold2/seed1` | 2 | 1 |" in card


@pytest.fixture
def fake_recipe(tmp_path):
    recipe = tmp_path / "recipe"
    (recipe / "hparams").mkdir(parents=True)
    (recipe / "train.py").write_text(FAKE_TRAIN)
    (recipe / "hparams" / "fake.yaml").write_text("experiment: fake\n")
    return recipe / "hparams" / "fake.yaml"


@pytest.mark.slow
def test_sweep_runs_every_fold_and_seed_and_reports(sweep):
    output, result = sweep
    assert result.returncode == 0, result.stderr[-4000:]
    assert "cv runs" in result.stderr  # the progress bar
    for fold in (1, 2):
        for seed in (1, 2):
            run = output / f"speaker_fold{fold}" / f"seed{seed}"
            assert (run / "test_results.json").is_file()
            assert "train.py" in (run / "stdout.log").read_text()
    results = read_json(output / "cv_results.json")
    runs = {(r["fold"], r["seed"]): r for r in results["runs"]}
    assert set(runs) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert runs[2, 1]["test_speakers"] == ["Ses01M"]
    # a full fold x seed grid: the mean of seed means is the mean of runs
    ua = [
        read_json(output / r["path"] / "test_results.json")["UA"]
        for r in results["runs"]
    ]
    assert results["summary"]["all"]["UA"]["mean"] == pytest.approx(sum(ua) / 4)
    assert (output / "cv_results.csv").is_file()
    assert (output / "report.md").is_file()


@pytest.mark.slow
def test_second_invocation_skips_complete_runs_and_resumes_an_incomplete_one(
    sweep, tmp_path, synthetic_corpus, synthetic_prepared, capsys, monkeypatch
):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    output = tmp_path / "sweep"
    shutil.copytree(sweep[0], output)
    broken = output / "speaker_fold2" / "seed1"
    (broken / "test_results.json").unlink()
    logs = {
        path: path.read_text()
        for path in output.glob("speaker_fold*/seed*/stdout.log")
        if path.parent != broken
    }
    status = mtmm(
        ["cv", *sweep_args(output, synthetic_corpus, synthetic_prepared)]
    )
    assert status == 0
    assert "3 of 4 runs already complete" in capsys.readouterr().err
    assert len(logs) == 3
    for path, text in logs.items():
        assert path.read_text() == text, f"{path.parent} was run again"
    assert (broken / "test_results.json").is_file()
    second_attempt = (broken / "stdout.log").read_text().split("\n# ")[-1]
    assert "Loading a checkpoint" in second_attempt
    epochs = re.findall(r"^epoch: 1,", (broken / "train_log.txt").read_text())
    assert len(epochs) == 1, "the finished epoch was trained again"


def test_failed_run_is_reported_and_the_others_go_on(
    fake_recipe, tmp_path, capsys
):
    output = tmp_path / "out"
    status = mtmm(
        [
            "cv",
            str(fake_recipe),
            "--protocol",
            "session",
            "--folds",
            "1",
            "2",
            "3",
        ]
        + ["--seeds", "1", "--output", str(output), "--fail_folds=2"]
    )
    assert status == 1
    failed_log = output / "session_fold2" / "seed1" / "stdout.log"
    assert str(failed_log) in capsys.readouterr().err
    assert "fake failure" in failed_log.read_text()
    for fold in (1, 3):
        run = output / f"session_fold{fold}" / "seed1"
        assert (run / "test_results.json").is_file()
    assert read_json(output / "cv_results.json")["folds"] == [1, 3]


def test_each_job_gets_one_gpu_round_robin(fake_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    output = tmp_path / "out"
    status = mtmm(
        ["cv", str(fake_recipe), "--protocol", "session", "--seeds", "1"]
        + ["--jobs", "2", "--output", str(output)]
    )
    assert status == 0
    gpus = [
        (output / f"session_fold{k}" / "seed1" / "gpu.txt").read_text()
        for k in range(1, 6)
    ]
    assert set(gpus) == {"3", "5"}, gpus


def test_print_commands_prints_one_line_per_incomplete_run(tmp_path, capsys):
    output = tmp_path / "out"
    overrides = {"data_folder": "/data", "lr": "0.5"}
    done = plan_runs(YAML, "session", [1], [1], output, overrides)[0]
    done.folder.mkdir(parents=True)
    (done.folder / "test_results.json").write_text("{}")
    write_run_config(
        done.folder, run_settings(done.hparams_file, done.overrides)
    )
    status = mtmm(
        ["cv", str(YAML), "--protocol", "session", "--folds", "1", "2", "3"]
        + ["--seeds", "1", "2", "--output", str(output), "--print-commands"]
        + ["--data_folder=/data", "--lr=0.5"]
    )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    command = [
        sys.executable,
        "train.py",
        "hparams/iemocap.yaml",
        "--protocol=session",
        "--fold=3",
        "--seed=2",
        f"--output_folder={output / 'session_fold3' / 'seed2'}",
        "--data_folder=/data",
        "--lr=0.5",
    ]
    assert lines[-1] == f"cd {shlex.quote(str(RECIPE))} && " + shlex.join(
        command
    )
    assert sorted(p.name for p in output.iterdir()) == ["session_fold1"]


def test_all_folds_by_default_10_speaker_5_session(tmp_path):
    speaker = plan_runs(YAML, "speaker", None, [1, 2], tmp_path, {})
    session = plan_runs(YAML, "session", None, [7], tmp_path, {})
    assert [(r.fold, r.seed) for r in speaker[-2:]] == [(10, 1), (10, 2)]
    assert len(speaker) == 20
    assert [r.fold for r in session] == [1, 2, 3, 4, 5]


def test_keys_the_runner_sets_are_refused_as_overrides(capsys):
    assert mtmm(["cv", str(YAML), "--fold=2", "--print-commands"]) == 2
    assert "--fold is set by the runner" in capsys.readouterr().err


@pytest.mark.slow
def test_table_runs_two_rows_and_puts_the_paper_beside_ours(
    tmp_path, synthetic_corpus, synthetic_prepared, monkeypatch
):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    output = tmp_path / "table"
    status = mtmm(
        ["table", str(YAML), "--rows", "roberta_no_fusion", "self_attention"]
        + ["--folds", "1", "--seeds", "1", "--output", str(output)]
        + tiny_overrides(synthetic_corpus, synthetic_prepared)
    )
    assert status == 0
    table = (output / "table.md").read_text()
    assert "| HuBERT + RoBERTa-large, no refinement/fusion]" in table.replace(
        "| [", "| "
    )
    assert "| 68.30 |" in table and "| 73.92 |" in table  # paper UAR
    cells = read_json(output / "table.json")
    for row, refinement in (
        ("roberta_no_fusion", "False"),
        ("self_attention", "True"),
    ):
        run = output / row / "multi" / "speaker_fold1" / "seed1"
        # ours: one fold and one seed, so the mean is that run's UA
        ours = cells[row]["multi"]["UA"]["mean"]
        assert ours == pytest.approx(read_json(run / "test_results.json")["UA"])
        # the preset is applied; the command line wins over it
        hparams = (run / "hyperparams.yaml").read_text()
        assert re.search(r"^fusion_type: pooled_mean\b", hparams, re.M)
        assert re.search(rf"^refinement: {refinement}\b", hparams, re.M | re.I)
        assert re.search(r"^text_source: hashing\b", hparams, re.M)
        assert (output / row / "multi" / "report.md").is_file()


@pytest.mark.slow
def test_a_sweep_rerun_with_other_settings_is_refused(
    sweep, tmp_path, synthetic_corpus, synthetic_prepared, capsys, monkeypatch
):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    output = tmp_path / "sweep"
    shutil.copytree(sweep[0], output)
    logs = {p: p.read_text() for p in output.glob("*/seed*/stdout.log")}
    args = sweep_args(output, synthetic_corpus, synthetic_prepared)
    # the same command with 2 epochs (an override given once)
    args = [
        "--number_of_epochs=2" if a.startswith("--number_of_epochs=") else a
        for a in args
    ]
    assert mtmm(["cv", *args]) == 1
    err = capsys.readouterr().err
    assert "4 run(s) of this sweep were made with other settings" in err
    assert "number_of_epochs: 1 -> 2" in err
    assert {p: p.read_text() for p in logs} == logs  # nothing ran
