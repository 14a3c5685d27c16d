"""Shared pytest fixtures.

``synthetic_corpus`` and ``synthetic_prepared`` are session-scoped and
shared by many tests: treat them as read-only (copy before modifying).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    SIZES,
    generate_synthetic_iemocap,
)
from speechbrain_mtmm.testing.demo import (
    OFFLINE_ENV,
    build_tiny_encoders,
    find_recipe,
    recipe_command,
    run_recipe,
)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """A small synthetic IEMOCAP corpus, generated once (seed 0, "tiny").

    Returns the output folder (a ``pathlib.Path``) holding
    ``IEMOCAP_full_release/`` (the ``data_folder`` of ``prepare_iemocap``)
    and ``generator_summary.json`` (what was written).
    """
    out = tmp_path_factory.mktemp("synthetic_corpus")
    generate_synthetic_iemocap(out, seed=0, utterances_per_dialog=SIZES["tiny"])
    return out


@pytest.fixture(scope="session")
def synthetic_prepared(synthetic_corpus, tmp_path_factory):
    """``synthetic_corpus`` prepared with the default options (4class).

    Returns the save folder (a ``pathlib.Path``) holding ``iemocap.json``,
    ``summary.json`` and ``folds/``.
    """
    save_folder = tmp_path_factory.mktemp("synthetic_prepared")
    prepare_iemocap(synthetic_corpus / RELEASE_DIRNAME, save_folder)
    return save_folder


@pytest.fixture(scope="session")
def tiny_hf_encoders(tmp_path_factory, synthetic_prepared):
    """Folders of a tiny random HuBERT and DeBERTa-v2 (its sentencepiece
    tokenizer trained on the synthetic transcripts), built once."""
    with open(synthetic_prepared / "iemocap.json", encoding="utf-8") as fin:
        texts = [entry["text"] for entry in json.load(fin).values()]
    return build_tiny_encoders(tmp_path_factory.mktemp("tiny_hf"), texts)


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "IEMOCAP"


@pytest.fixture(scope="session")
def recipe():
    """The checkout's IEMOCAP recipe folder."""
    return find_recipe(RECIPE)


@pytest.fixture(scope="session")
def train(recipe):
    """``train(corpus, prepared, output, audio, text, extra=None, args=(),
    check=True)`` runs the recipe at toy size (tiny_overrides.yaml) on a
    synthetic corpus folder and returns the completed process (stdout and
    stderr as text); with ``check`` a failed run raises with its output."""

    def run(
        corpus, prepared, output, audio, text, extra=None, args=(), check=True
    ):
        command = recipe_command(
            recipe,
            corpus / RELEASE_DIRNAME,
            prepared,
            output,
            audio,
            text,
            extra,
        )
        return run_recipe(recipe, [*command, *args], check=check)

    return run


@pytest.fixture(scope="session")
def train_and_kill(recipe):
    """``train_and_kill(corpus, prepared, output, audio, text, extra,
    epoch)`` starts the recipe like ``train`` and kills it (SIGKILL) as soon
    as ``epoch`` is in its train_log.txt; fails if it finished first."""

    def run(corpus, prepared, output, audio, text, extra, epoch):
        command = recipe_command(
            recipe,
            corpus / RELEASE_DIRNAME,
            prepared,
            output,
            audio,
            text,
            extra,
        )
        process = subprocess.Popen(
            command,
            cwd=recipe,
            env=dict(os.environ, **OFFLINE_ENV),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log = Path(output) / "train_log.txt"
        deadline = time.time() + 120
        while process.poll() is None and time.time() < deadline:
            if log.exists() and f"epoch: {epoch}," in log.read_text():
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (Path(output) / "test_results.json").exists(), "too late"

    return run
