"""Dynamic batching and mixed precision in the IEMOCAP recipe.

Nothing here measures time (see benchmarks/ for that): the tests check that
the options run, report what they should and change what they should.
"""

import json
import math
import re
import shutil

import pytest
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_mtmm.data.folds import fold_paths
from speechbrain_mtmm.run_folder import read_predictions
from speechbrain_mtmm.training.batches import (
    evaluation_batches,
    train_loader_options,
)


def train_stat(output, name):
    """The per-epoch values of a training statistic in train_log.txt."""
    with open(output / "train_log.txt") as fin:
        found = re.findall(rf"train {name}: ([-\d.e+]+)", fin.read())
    return [float(value) for value in found]


def finite_results(output):
    with open(output / "test_results.json") as fin:
        results = json.load(fin)
    keys = ("WA", "UA", "CCC_valence", "CCC_arousal")
    return all(math.isfinite(results[key]) for key in keys)


DYNAMIC = {"dynamic_batching": True, "max_batch_length": 10.0}


def train_set(synthetic_prepared):
    path = fold_paths(synthetic_prepared, "speaker", 1)["train"]
    return DynamicItemDataset.from_json(path)


def dynamic_options(max_batch_length=10.0):
    """``train_loader_options`` arguments of dynamic batching."""
    return {
        "loader_options": {"num_workers": 0},
        "sampler_options": {
            "max_batch_length": max_batch_length,
            "num_buckets": 20,
            "shuffle": True,
            "batch_ordering": "random",
        },
        "seed": 1,
        "max_audio_seconds": 10.0,
    }


def test_dynamic_batches_hold_every_utterance_once_within_the_limit(
    synthetic_prepared,
):
    dataset = train_set(synthetic_prepared)
    options, sampler = train_loader_options(dataset, **dynamic_options())
    assert options["batch_sampler"] is sampler
    durations = [dataset.data[i]["duration"] for i in dataset.data_ids]
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(
        range(len(dataset))
    )
    for batch in batches:
        longest = max(durations[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 10.0
    assert len({len(batch) for batch in batches}) > 1  # sizes follow length


def test_fixed_batches_are_the_default(synthetic_prepared):
    options, sampler = train_loader_options(
        train_set(synthetic_prepared), {"a": 1}, seed=3
    )
    assert sampler is None and options.pop("a") == 1
    # the workers' seeds come from a generator of the loader's own
    assert options.pop("generator").initial_seed() == 3 and not options


@pytest.mark.slow  # trains the recipe: CI's second step
def test_dynamic_batching_pads_less_and_the_padding_is_logged(
    tmp_path, synthetic_corpus, synthetic_prepared, train
):
    padding = {}
    for name, extra in (("fixed", {}), ("dynamic", DYNAMIC)):
        output = tmp_path / name
        train(
            synthetic_corpus,
            synthetic_prepared,
            output,
            "fbank",
            "hashing",
            {"number_of_epochs": 2, **extra},
        )
        padding[name] = train_stat(output, "audio_padding")
        assert len(padding[name]) == 2
        assert len(train_stat(output, "text_padding")) == 2
        assert len(train_stat(output, "utt_per_s")) == 2
    assert all(0 < value < 1 for value in padding["fixed"]), padding
    assert all(0 <= value < 1 for value in padding["dynamic"]), padding
    assert max(padding["dynamic"]) < min(padding["fixed"]), padding


@pytest.mark.slow  # trains the recipe: CI's second step
def test_bf16_fine_tuning_runs_on_cpu(
    tmp_path, synthetic_corpus, synthetic_prepared, tiny_hf_encoders, train
):
    output = tmp_path / "run"
    result = train(
        synthetic_corpus,
        synthetic_prepared,
        output,
        *tiny_hf_encoders,
        {"number_of_epochs": 1, "modality_masking": False},
        args=["--precision=bf16"],
    )
    assert "--precision=bf16" in result.stdout + result.stderr
    assert finite_results(output)


@pytest.mark.slow  # trains the recipe: CI's second step
def test_bf16_cached_training_with_a_learned_layer_sum_runs_on_cpu(
    tmp_path, synthetic_corpus, synthetic_prepared, tiny_hf_encoders, train
):
    output = tmp_path / "run"
    result = train(
        synthetic_corpus,
        synthetic_prepared,
        output,
        *tiny_hf_encoders,
        {
            "number_of_epochs": 2,
            "freeze_policy": "frozen",
            "feature_cache": True,
            "feature_cache_folder": str(tmp_path / "cache"),
            "audio_layers": [0, 1, 2],
            **DYNAMIC,
        },
        args=["--precision=bf16"],
    )
    assert "--precision=bf16" in result.stdout + result.stderr
    assert finite_results(output)
    saved = sorted((output / "save").glob("CKPT+*/system.ckpt"))
    logits = torch.load(saved[-1], weights_only=True)["audio_layer_sum.logits"]
    assert logits.shape == (3,) and logits.abs().sum() > 0  # it learned


def padded_fraction(dataset, batches):
    """Fraction of padded samples over the batches (lists of indices)."""
    durations = [
        dataset.data[dataset.data_ids[i]]["duration"]
        for i in range(len(dataset))
    ]
    total = sum(max(durations[i] for i in b) * len(b) for b in batches)
    return 1 - sum(durations) / total


@pytest.mark.slow  # trains the recipe: CI's second step
def test_evaluation_batches_by_duration_pad_less_and_predict_the_same(
    tmp_path, synthetic_corpus, synthetic_prepared, light_run, train
):
    """One trained run (a copy of conftest's light run, tested in fixed
    batches), its test set evaluated again with each batching (a rerun
    into a finished run folder only evaluates)."""
    assert light_run.extra["eval_batching"] == "fixed"
    assert light_run.extra["max_batch_length"] == 6.0
    output = tmp_path / "run"
    shutil.copytree(light_run.folder, output)
    rows = {"fixed": {r["id"]: r for r in read_predictions(output)}}
    for mode in ("sorted", "dynamic"):
        extra = {**light_run.extra, "eval_batching": mode}
        train(
            synthetic_corpus,
            synthetic_prepared,
            output,
            "fbank",
            "hashing",
            extra,
        )
        rows[mode] = {r["id"]: r for r in read_predictions(output)}
    assert (
        rows["fixed"].keys() == rows["sorted"].keys() == rows["dynamic"].keys()
    )
    for mode in ("sorted", "dynamic"):
        for utt_id, row in rows[mode].items():
            reference = rows["fixed"][utt_id]
            assert row["pred_emo"] == reference["pred_emo"]
            for label, p in row["probs"].items():
                assert p == pytest.approx(reference["probs"][label], abs=2e-5)
    test_set = DynamicItemDataset.from_json(
        fold_paths(synthetic_prepared, "speaker", 1)["test"]
    )
    _, options = evaluation_batches(
        test_set,
        "dynamic",
        {"batch_size": 8, "num_workers": 0},
        max_batch_length=6.0,
        num_buckets=20,
        max_audio_seconds=10.0,
    )
    fixed = [
        list(range(i, min(i + 8, len(test_set))))
        for i in range(0, len(test_set), 8)
    ]
    assert padded_fraction(
        test_set, list(options["batch_sampler"])
    ) < padded_fraction(test_set, fixed)
