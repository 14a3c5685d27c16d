"""Dynamic batching and mixed precision in the IEMOCAP recipe.

Nothing here measures time (see benchmarks/ for that): the tests check that
the options run, report what they should and change what they should.
"""

import json
import math
import re

import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_mtmm.data.folds import fold_paths
from speechbrain_mtmm.training.recipe import train_loader_options


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


def dynamic_hparams(max_batch_length=10.0):
    return {
        "dynamic_batching": True,
        "max_audio_seconds": 10.0,
        "seed": 1,
        "num_workers": 0,
        "dynamic_batch_sampler": {
            "max_batch_length": max_batch_length,
            "num_buckets": 20,
            "shuffle": True,
            "batch_ordering": "random",
        },
    }


def test_dynamic_batches_hold_every_utterance_once_within_the_limit(
    synthetic_prepared,
):
    dataset = train_set(synthetic_prepared)
    options, sampler = train_loader_options(dynamic_hparams(), dataset)
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
    hparams = {"dynamic_batching": False, "train_dataloader_opts": {"a": 1}}
    assert train_loader_options(hparams, train_set(synthetic_prepared)) == (
        {"a": 1},
        None,
    )


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
