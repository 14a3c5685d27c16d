"""Multi-process training: torchrun + SpeechBrain DDP, on CPU with gloo.

The command is the one docs/recipes.md shows, ``torchrun --nproc_per_node=2
train.py ... --device=cpu``, without ``--distributed_backend``: on the CPU
the recipe takes gloo itself (SpeechBrain's default, nccl, stopped with
"Not enough GPUs available!").

Two processes train one fold together: each sees half of the training set
per epoch (SpeechBrain's DistributedSampler), gradients are averaged by
DistributedDataParallel, validation and test run in full on every process
(SpeechBrain does not shard them, so the metrics are the same everywhere)
and only the main process writes the log, checkpoints and results.

Without a barrier after the checkpoint folder is renamed into place
(speechbrain_mtmm.training.checkpoints), the two processes could list different
checkpoints when deleting old ones and deadlock (2 runs of this file in 5
hung before that fix, 0 in 6 after); a hang fails the test after 5
minutes.
"""

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from speechbrain_mtmm.data.folds import fold_paths
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV, recipe_command

# every test here trains with two processes: CI's second step (-m slow)
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(recipe, corpus, prepared, output, audio, text, extra):
    command = recipe_command(
        recipe,
        corpus / "IEMOCAP_full_release",
        prepared,
        output,
        audio,
        text,
        extra,
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        *command[1:],
    ]  # no --distributed_backend: on the CPU the recipe takes gloo itself
    env = dict(os.environ, **OFFLINE_ENV)
    process = subprocess.Popen(
        command,
        cwd=recipe,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        log, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # a deadlocked process group: stop torchrun and both workers
        os.killpg(process.pid, signal.SIGKILL)
        log, _ = process.communicate()
        pytest.fail(f"torchrun hung (deadlock?):\n{log[-5000:]}")
    if process.returncode != 0:
        pytest.fail(f"torchrun failed:\n{log[-5000:]}")
    return log


def check_one_complete_run(output, log, prepared, epochs, batch_size=8):
    """Every epoch logged once, results written once, the training set
    split between the two processes."""
    with open(output / "train_log.txt") as fin:
        logged = re.findall(r"^epoch: (\d+),", fin.read(), re.M)
    assert logged == [str(e) for e in range(1, epochs + 1)]
    with open(output / "test_predictions.jsonl") as fin:
        ids = [json.loads(line)["id"] for line in fin]
    with open(fold_paths(prepared, "speaker", 1)["test"]) as fin:
        assert sorted(ids) == sorted(json.load(fin))  # each exactly once
    results = json.loads((output / "test_results.json").read_text())
    assert results["n"] == len(ids) and math.isfinite(results["UA"])
    with open(fold_paths(prepared, "speaker", 1)["train"]) as fin:
        n_train = len(json.load(fin))
    return n_train


def test_two_processes_fine_tune_one_fold_and_write_results_once(
    tmp_path, synthetic_corpus, synthetic_prepared, recipe
):
    output = tmp_path / "run"
    log = torchrun(
        recipe,
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {"number_of_epochs": 2},
    )
    n_train = check_one_complete_run(output, log, synthetic_prepared, 2)
    # the main process's progress bar counts its own half of the batches
    per_process = math.ceil(math.ceil(n_train / 2) / 8)
    assert per_process < math.ceil(n_train / 8)
    assert f"| 0/{per_process} [" in log


def test_two_processes_train_from_the_feature_cache(
    tmp_path, synthetic_corpus, synthetic_prepared, tiny_hf_encoders, recipe
):
    """The cache is built once by the main process; both read it; the
    learned layer sum and dynamic batches work under DDP too."""
    output = tmp_path / "run"
    cache = tmp_path / "cache"
    log = torchrun(
        recipe,
        synthetic_corpus,
        synthetic_prepared,
        output,
        *tiny_hf_encoders,
        {
            "number_of_epochs": 2,
            "freeze_policy": "frozen",
            "feature_cache": True,
            "feature_cache_folder": str(cache),
            "audio_layers": [1, 2],
            "dynamic_batching": True,
            "max_batch_length": 10.0,
        },
    )
    check_one_complete_run(output, log, synthetic_prepared, 2)
    assert log.count("computing") == 2  # audio and text, once each
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == [
        "audio",
        "text",
    ]


def test_two_processes_train_with_the_auxiliary_objectives(
    tmp_path, synthetic_corpus, synthetic_prepared, recipe
):
    """MMER's fusion and all three auxiliary heads under DDP, with Random
    Modality Masking on (epochs whose audio is masked leave the CTC and
    AugCon heads without input: they must not count as unused)."""
    output = tmp_path / "run"
    log = torchrun(
        recipe,
        synthetic_corpus,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {
            "number_of_epochs": 3,
            "fusion_type": "mmer",
            "fusion_ffn": 32,
            "w_ctc": 0.1,
            "w_supcon": 0.1,
            "w_aug": 0.1,
            "masking_p_start": 1.0,
            "masking_text_prob": 0.0,
        },
    )
    check_one_complete_run(output, log, synthetic_prepared, 3)
    logged = (output / "train_log.txt").read_text()
    assert "masked: audio" in logged and "train augcon: " in logged
