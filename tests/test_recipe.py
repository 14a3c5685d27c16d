"""The IEMOCAP recipe end to end on synthetic corpora with tiny models."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap
from speechbrain_mtmm.encoders import HFAudioEncoder, HFTextEncoder
from speechbrain_mtmm.testing.recipes import recipe_command
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_roberta,
    build_tiny_wavlm,
)

LIGHT = ("fbank", "hashing")
REQUIRED_RESULTS = {
    "WA",
    "UA",
    "macro_F1",
    "CCC_valence",
    "CCC_arousal",
    "confusion",
    "labels",
    "n",
}
PREDICTION_KEYS = {
    "id",
    "emo",
    "pred_emo",
    "probs",
    "valence",
    "pred_valence",
    "arousal",
    "pred_arousal",
}


def read_json(path):
    with open(path) as fin:
        return json.load(fin)


def logged_epochs(output):
    with open(output / "train_log.txt") as fin:
        return [int(m) for m in re.findall(r"^epoch: (\d+),", fin.read(), re.M)]


@pytest.fixture(scope="module")
def paper_run(tiny_hf_run):
    """The paper's configuration at toy width, 3 epochs, fold 1 (the run
    folder of conftest's ``tiny_hf_run``)."""
    return tiny_hf_run.run


def test_recipe_writes_log_checkpoints_results_and_predictions(paper_run):
    assert logged_epochs(paper_run) == [1, 2, 3]
    assert any(
        p.name.startswith("CKPT") for p in (paper_run / "save").iterdir()
    )
    results = read_json(paper_run / "test_results.json")
    assert REQUIRED_RESULTS <= set(results)
    assert results["labels"] == ["neu", "hap", "sad", "ang"]
    assert sum(map(sum, results["confusion"])) == results["n"]
    assert 0 <= results["UA"] <= 1 and -1 <= results["CCC_valence"] <= 1


def test_predictions_cover_exactly_the_test_speaker(
    paper_run, synthetic_prepared
):
    test_split = read_json(
        synthetic_prepared / "folds" / "speaker" / "fold_1" / "test.json"
    )
    with open(paper_run / "test_predictions.jsonl") as fin:
        rows = [json.loads(line) for line in fin]
    assert {r["id"] for r in rows} == set(test_split)
    assert {r["speaker"] for r in rows} == {"Ses01F"}
    for row in rows:
        assert PREDICTION_KEYS <= set(row)
        truth = test_split[row["id"]]
        assert row["emo"] == truth["emo"]
        assert row["valence"] == pytest.approx(truth["valence"], abs=1e-3)
        assert row["arousal"] == pytest.approx(truth["arousal"], abs=1e-3)
        assert 1 <= row["pred_valence"] <= 5
        assert sum(row["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert row["pred_emo"] == max(row["probs"], key=row["probs"].get)


def test_tested_checkpoint_is_the_best_on_validation(paper_run):
    with open(paper_run / "train_log.txt") as fin:
        log = fin.read()
    scores = [float(s) for s in re.findall(r"valid score: ([-\d.e+]+)", log)]
    loaded = int(re.search(r"Epoch loaded: (\d+)", log).group(1))
    assert loaded == 1 + scores.index(max(scores))


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(
    tmp_path, synthetic_corpus, synthetic_prepared, recipe, train
):
    output = tmp_path / "run"
    extra = {"number_of_epochs": 4, "ckpt_interval_steps": 2}
    command = recipe_command(
        recipe,
        synthetic_corpus / "IEMOCAP_full_release",
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        extra,
    )
    process = subprocess.Popen(
        command,
        cwd=recipe,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        saved = (output / "save").exists() and any(
            p.name.startswith("CKPT") for p in (output / "save").iterdir()
        )
        if (
            saved
            and (output / "train_log.txt").exists()
            and logged_epochs(output)
        ):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "test_results.json").exists(), "killed too late"
    resumed = train(
        synthetic_corpus, synthetic_prepared, output, "fbank", "hashing", extra
    )
    assert "Loading a checkpoint" in resumed.stdout + resumed.stderr
    epochs = logged_epochs(output)
    # at most the epoch in progress at the kill is trained (and logged) twice
    assert sorted(set(epochs)) == [1, 2, 3, 4] and len(epochs) <= 5, epochs
    assert (output / "test_results.json").exists()


@pytest.mark.slow
def test_a_run_resumed_mid_epoch_ends_with_the_results_of_an_uninterrupted_one(
    tmp_path, synthetic_corpus, synthetic_prepared, train, train_and_kill
):
    """Killed (SIGKILL) early in its second epoch, right after an
    intra-epoch checkpoint, and resumed: the rest of that epoch sees the
    batches it would have seen, with the same random draws, so the test
    results, the predictions and every epoch's training loss equal those
    of the run left alone; the resumed epoch's line says after which batch
    it resumed (its speed figures cover only what followed)."""
    extra = {"number_of_epochs": 3, "batch_size": 2, "ckpt_interval_steps": 1}
    whole = tmp_path / "whole"
    train(synthetic_corpus, synthetic_prepared, whole, *LIGHT, extra)
    killed = tmp_path / "killed"
    train_and_kill(
        synthetic_corpus,
        synthetic_prepared,
        killed,
        *LIGHT,
        extra,
        epoch=1,
        mid_epoch=8,  # of 26 batches
    )
    train(synthetic_corpus, synthetic_prepared, killed, *LIGHT, extra)
    assert read_json(killed / "test_results.json") == read_json(
        whole / "test_results.json"
    )
    assert (killed / "test_predictions.jsonl").read_text() == (
        whole / "test_predictions.jsonl"
    ).read_text()
    log = (killed / "train_log.txt").read_text()
    losses = re.findall(r"train loss: ([-\d.e+]+)", log)
    expected = re.findall(
        r"train loss: ([-\d.e+]+)", (whole / "train_log.txt").read_text()
    )
    assert losses == expected
    resumed = re.findall(r"train resumed_after_batch: (\d+)", log)
    assert len(resumed) == 1 and 0 < int(resumed[0]) <= 16


def test_encoders_swap_by_source_key(
    tmp_path, synthetic_corpus, synthetic_prepared, train
):
    texts = [
        e["text"]
        for e in read_json(synthetic_prepared / "iemocap.json").values()
    ]
    wavlm = build_tiny_wavlm(tmp_path / "wavlm")
    roberta = build_tiny_roberta(tmp_path / "roberta", texts)
    output = tmp_path / "run"
    train(
        synthetic_corpus,
        synthetic_prepared,
        output,
        wavlm,
        roberta,
        {"number_of_epochs": 1, "freeze_policy": "frozen"},
    )
    results = read_json(output / "test_results.json")
    test_split = read_json(
        synthetic_prepared / "folds" / "speaker" / "fold_1" / "test.json"
    )
    assert results["n"] == len(test_split)
    assert sum(map(sum, results["confusion"])) == results["n"]
    # the checkpoint records the frozen encoders it was trained with: the
    # swapped ones, by folder and by the fingerprint of their weights
    saved = sorted(output.glob("save/CKPT+*/system.frozen.json"))[-1]
    record = read_json(saved)
    for modality, source, encoder in (
        ("audio", wavlm, HFAudioEncoder),
        ("text", roberta, HFTextEncoder),
    ):
        fingerprint = encoder(source, freeze="frozen").fingerprint()
        assert record[modality] == {
            "source": str(source),
            "fingerprint": fingerprint,
        }


def test_a_folder_that_is_not_iemocap_gets_a_clear_error(tmp_path, refused):
    empty = tmp_path / "nothing"
    (empty / "IEMOCAP_full_release").mkdir(parents=True)
    line = refused(
        empty, tmp_path / "prep", tmp_path / "run", "fbank", "hashing"
    )
    assert re.match(r"IEMOCAP\w*Error: ", line)
    assert str(empty) in line


def test_the_recipe_trains_a_fusion_of_yours_named_on_the_command_line(
    tmp_path, synthetic_corpus, synthetic_prepared, train, monkeypatch
):
    """No edit of the package: the class is found by its import path."""
    (tmp_path / "my_blocks.py").write_text(
        "import torch\n\n\n"
        "class MaxPool(torch.nn.Module):\n"
        '    """Max-pooled audio and text, concatenated."""\n\n'
        "    def __init__(self, d_model):\n"
        "        super().__init__()\n"
        "        self.output_size = 2 * d_model\n\n"
        "    def forward(self, audio, audio_lens, text, text_lens):\n"
        '        """Pads count too: a toy."""\n'
        "        return torch.cat([audio.amax(1), text.amax(1)], -1)\n"
    )
    # beside the package the tests import (a checkout on PYTHONPATH)
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    output = tmp_path / "run"
    train(
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {"fusion_type": "my_blocks.MaxPool", "number_of_epochs": 1},
    )
    assert read_json(output / "test_results.json")["n"] > 0
    hparams = (output / "hyperparams.yaml").read_text()
    assert "fusion_type: my_blocks.MaxPool" in hparams


def test_labels_that_do_not_match_the_label_map_are_an_error(
    tmp_path, synthetic_corpus, synthetic_prepared, refused
):
    line = refused(
        synthetic_corpus,
        synthetic_prepared,
        tmp_path / "run",
        "fbank",
        "hashing",
        {"labels": ["neu", "hap", "sad"]},
    )
    assert "not in labels" in line


@pytest.fixture(scope="module")
def learning_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learning_corpus")
    generate_synthetic_iemocap(folder, seed=3)
    return folder


@pytest.mark.slow
def test_multimodal_model_beats_both_single_modality_models(
    tmp_path, learning_corpus, train
):
    """The synthetic corpus puts valence in words and arousal in prosody, so
    only audio + text separate all four classes: text alone confuses sad
    with ang, audio alone hap with ang (each costs about a fifth of the
    utterances). A session fold (two test speakers) gives enough test
    utterances for that gap to show whatever the fold's class mix."""
    prepared = tmp_path / "prepared"
    wa = {}
    for name, modalities in (
        ("both", ["audio", "text"]),
        ("audio", ["audio"]),
        ("text", ["text"]),
    ):
        output = tmp_path / name
        train(
            learning_corpus,
            prepared,
            output,
            "fbank",
            "hashing",
            {
                "number_of_epochs": 10,
                "modalities": modalities,
                "modality_masking": False,
                "protocol": "session",
            },
        )
        wa[name] = read_json(output / "test_results.json")["WA"]
    assert wa["both"] >= 0.85, wa
    assert wa["both"] >= wa["audio"] + 0.15, wa
    assert wa["both"] >= wa["text"] + 0.15, wa


@pytest.mark.parametrize(
    "override, message",
    [
        ({"fusion_typ": "pooled_mean"}, "(did you mean fusion_type"),
        ({"audio_cache_layers": [0, 1]}, "(renamed audio_layers"),
    ],
    ids=["typo", "renamed"],
)
def test_an_unknown_override_is_one_line_naming_the_key(
    override, message, tmp_path, synthetic_corpus, synthetic_prepared, refused
):
    error = refused(
        synthetic_corpus,
        synthetic_prepared,
        tmp_path / "run",
        "fbank",
        "hashing",
        override,
    )
    assert error.startswith("HparamsError: ") and message in error


@pytest.mark.parametrize(
    "override, message",
    [
        ({"lr": "abc"}, "lr must be a number (like 3e-05), not 'abc'"),
        ({"batch_size": 0}, "batch_size must be positive, not 0"),
        ({"fusion_type": "x"}, "fusion_type 'x' is not one of bridge_"),
    ],
    ids=["kind", "range", "refused"],
)
def test_an_invalid_value_is_one_line_naming_the_key_and_leaves_no_folder(
    override, message, tmp_path, synthetic_corpus, synthetic_prepared, refused
):
    output = tmp_path / "run"
    error = refused(
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        override,
    )
    assert error.startswith("HparamsError: ") and message in error, error
    assert not output.exists()


def test_a_class_with_no_training_example_is_refused_naming_it(
    tmp_path, synthetic_corpus, synthetic_prepared, refused
):
    output = tmp_path / "run"
    line = refused(
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {"labels": ["neu", "hap", "sad", "ang", "fru"]},
    )
    assert not output.exists()  # the run folder it made is removed
    train_split = synthetic_prepared / "folds" / "speaker" / "fold_1"
    assert line == (
        f"DataError: {train_split / 'train.json'}: labels ['fru'] have no "
        "training example; remove them from labels or fix label_map"
    )


def test_a_fold_out_of_range_is_one_line_and_leaves_no_run_folder(
    tmp_path, synthetic_corpus, synthetic_prepared, refused
):
    output = tmp_path / "run"
    error = refused(
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {"fold": 11},
    )
    assert error == "FoldError: fold 11: the speaker protocol has folds 1-10"
    assert not output.exists()


def test_a_rerun_with_other_settings_is_refused_naming_them(
    tmp_path, synthetic_corpus, synthetic_prepared, light_run, train
):
    output = tmp_path / "run"
    shutil.copytree(light_run.folder, output)  # trained for 1 epoch
    args = (synthetic_corpus, synthetic_prepared, output, "fbank", "hashing")
    saved = (output / "hyperparams.yaml").read_text()
    result = train(
        *args,
        {
            **light_run.extra,
            "number_of_epochs": 2,
            "fusion_type": "pooled_mean",
        },
        check=False,
    )
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"RunFolderError: {output}: made with other")
    assert "fusion_type: bridge_crossed -> pooled_mean" in error
    assert "number_of_epochs: 1 -> 2" in error
    # the folder still describes how its model was trained
    assert (output / "hyperparams.yaml").read_text() == saved
    assert logged_epochs(output) == [1]


def test_start_over_discards_the_old_run_and_trains_anew(
    tmp_path, synthetic_corpus, synthetic_prepared, light_run, train
):
    output = tmp_path / "run"
    shutil.copytree(light_run.folder, output)  # trained for 1 epoch
    args = (synthetic_corpus, synthetic_prepared, output, "fbank", "hashing")
    train(*args, {"number_of_epochs": 2, "start_over": True})
    assert logged_epochs(output) == [1, 2]  # one fresh log
    settings = read_json(output / "run_config.json")["settings"]
    assert settings["number_of_epochs"] == 2
    assert "start_over" not in settings


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_results_of_an_uninterrupted_one(
    tmp_path, synthetic_corpus, synthetic_prepared, train, train_and_kill
):
    """Killed (SIGKILL) after its second epoch and resumed with the same
    command, a run must give exactly the test results and predictions of
    the same run left alone (CPU, same seed): model, optimizer, data order
    and the random generators behind dropout all continue."""
    extra = {"number_of_epochs": 4}
    whole = tmp_path / "whole"
    train(synthetic_corpus, synthetic_prepared, whole, *LIGHT, extra)
    killed = tmp_path / "killed"
    train_and_kill(
        synthetic_corpus, synthetic_prepared, killed, *LIGHT, extra, epoch=2
    )
    train(synthetic_corpus, synthetic_prepared, killed, *LIGHT, extra)
    assert read_json(killed / "test_results.json") == read_json(
        whole / "test_results.json"
    )
    assert (killed / "test_predictions.jsonl").read_text() == (
        whole / "test_predictions.jsonl"
    ).read_text()
