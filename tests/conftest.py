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
import yaml
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG

from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    SIZES,
    generate_synthetic_iemocap,
)
from speechbrain_mtmm.testing.recipes import (
    OFFLINE_ENV,
    build_tiny_encoders,
    find_recipe,
    recipe_command,
    run_recipe_command,
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


RECIPE = (
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)


@pytest.fixture(scope="session")
def recipe():
    """The checkout's IEMOCAP recipe folder."""
    return find_recipe(RECIPE)


@pytest.fixture(scope="session")
def train(recipe):
    """``train(corpus, prepared, output, audio, text, extra=None, args=(),
    check=True)`` runs the recipe at toy size (tiny_overrides()) on a
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
        return run_recipe_command(recipe, [*command, *args], check=check)

    return run


def intra_epoch_step(output):
    """The batch of the epoch after which a run's newest checkpoint was
    saved, when it was saved mid-epoch; else 0."""
    save = Path(output) / "save"
    metas = sorted(save.glob("CKPT+*/CKPT.yaml")) if save.is_dir() else []
    try:
        if not metas or INTRA_EPOCH_CKPT_FLAG not in metas[-1].read_text():
            return 0
        brain = yaml.safe_load((metas[-1].parent / "brain.ckpt").read_text())
    except FileNotFoundError:  # replaced while reading
        return 0
    return brain["step"]


@pytest.fixture(scope="session")
def train_and_kill(recipe):
    """``train_and_kill(corpus, prepared, output, audio, text, extra,
    epoch, mid_epoch=0)`` starts the recipe like ``train`` and kills it
    (SIGKILL) as soon as ``epoch`` is in its train_log.txt; with
    ``mid_epoch=k``, once its newest checkpoint is also an intra-epoch one
    saved after batch k or fewer (of the next epoch). Fails if it finished
    first, or with ``mid_epoch`` if the kill came at an epoch end."""

    def run(corpus, prepared, output, audio, text, extra, epoch, **kw):
        mid_epoch = kw.pop("mid_epoch", 0)
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
                if not mid_epoch or 0 < intra_epoch_step(output) <= mid_epoch:
                    break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (Path(output) / "test_results.json").exists(), "too late"
        if mid_epoch:
            assert 0 < intra_epoch_step(output) <= 2 * mid_epoch, "too late"

    return run
