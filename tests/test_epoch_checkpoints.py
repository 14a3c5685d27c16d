"""End-of-epoch checkpoints only where testing or resuming needs them
(issue 27): a cached run saves the best epochs, and a run killed after
epochs that were not saved trains them again, to the results of a run that
saved every epoch."""

import json
import re
import time

import pytest
import torch

from speechbrain_mtmm.training.checkpoints import (
    AtomicCheckpointer,
    save_epoch_checkpoint,
)

LIGHT = ("fbank", "hashing")
# a rate at which the validation score goes up and down (seed 1)
CACHED = {
    "lr": 0.01,
    "number_of_epochs": 6,
    "feature_cache": True,
    "freeze_policy": "frozen",
}


def skipped_epochs(output):
    """The epochs a run saved no checkpoint for, from its log.txt."""
    text = (output / "log.txt").read_text()
    return [int(e) for e in re.findall(r"Epoch (\d+): no checkpoint", text)]


def read_json(path):
    """A JSON file's content."""
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


def checkpointer(folder):
    """An atomic checkpointer of one small layer."""
    return AtomicCheckpointer(folder, {"model": torch.nn.Linear(2, 2)})


def test_an_epoch_below_the_best_is_saved_once_the_newest_is_old(tmp_path):
    ckpt = checkpointer(tmp_path)
    assert save_epoch_checkpoint(ckpt, {"score": 0.5}, 1, interval_minutes=1)
    assert not save_epoch_checkpoint(
        ckpt, {"score": 0.4}, 2, interval_minutes=1
    )
    # the newest checkpoint now two minutes old
    newest = ckpt.find_checkpoint()
    meta = newest.path / "CKPT.yaml"
    text = meta.read_text()
    old = newest.meta["unixtime"]
    meta.write_text(text.replace(str(old), str(time.time() - 120)))
    assert save_epoch_checkpoint(ckpt, {"score": 0.4}, 3, interval_minutes=1)
    # the best and the newest are kept
    scores = sorted(c.meta["score"] for c in ckpt.list_checkpoints())
    assert scores == [0.4, 0.5]


def test_every_epoch_is_saved_with_policy_every(tmp_path):
    ckpt = checkpointer(tmp_path)
    saved = [
        save_epoch_checkpoint(ckpt, {"score": s}, e, policy="every")
        for e, s in enumerate([0.5, 0.4, 0.3], 1)
    ]
    assert saved == [True, True, True]


def test_an_unknown_policy_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match="epoch_checkpoints must be one of"):
        save_epoch_checkpoint(
            checkpointer(tmp_path), {"score": 1.0}, 1, policy="best"
        )


@pytest.mark.slow
def test_a_run_killed_after_unsaved_epochs_ends_as_one_saving_every_epoch(
    tmp_path, synthetic_corpus, synthetic_prepared, train, train_and_kill
):
    every = tmp_path / "every"
    train(
        synthetic_corpus,
        synthetic_prepared,
        every,
        *LIGHT,
        {**CACHED, "epoch_checkpoints": "every"},
    )
    whole = tmp_path / "whole"
    train(synthetic_corpus, synthetic_prepared, whole, *LIGHT, CACHED)
    skipped = [e for e in skipped_epochs(whole) if e < 6]
    assert skipped, "the epochs 1-5 were each the best: nothing to test"
    assert not skipped_epochs(every)
    saved = len(list((every / "save").glob("CKPT+*")))
    assert len(list((whole / "save").glob("CKPT+*"))) <= saved
    # killed once the epoch after an unsaved one is logged: the newest
    # checkpoint is then at least two epochs old
    kill_at = skipped[0] + 1
    killed = tmp_path / "killed"
    train_and_kill(
        synthetic_corpus,
        synthetic_prepared,
        killed,
        *LIGHT,
        CACHED,
        epoch=kill_at,
    )
    train(synthetic_corpus, synthetic_prepared, killed, *LIGHT, CACHED)
    log = (killed / "train_log.txt").read_text()
    assert log.count(f"epoch: {skipped[0]},") == 2  # trained again
    for run in (whole, killed):
        assert read_json(run / "test_results.json") == read_json(
            every / "test_results.json"
        )
        assert (run / "test_predictions.jsonl").read_text() == (
            every / "test_predictions.jsonl"
        ).read_text()
