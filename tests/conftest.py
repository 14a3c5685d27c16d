"""Shared pytest fixtures.

``synthetic_corpus`` and ``synthetic_prepared`` are session-scoped and
shared by many tests: treat them as read-only (copy before modifying).
So are the trained runs that several modules test different facts of:
``tiny_hf_run`` (tiny HF encoders, exported with ONNX graphs) and
``light_run`` (the light fbank/hashing pair); copy them before changing
anything in them.
"""

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.catalog import SIZES
from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    generate_synthetic_iemocap,
)
from speechbrain_mtmm.run_folder import read_predictions
from speechbrain_mtmm.testing.recipes import (
    OFFLINE_ENV,
    build_tiny_encoders,
    find_recipe,
    load_recipe,
    recipe_command,
    run_recipe_command,
)
from speechbrain_mtmm.training.run import run_main


def _loggers():
    """The root logger and every logger made so far."""
    made = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger()] + [
        logger for logger in made if isinstance(logger, logging.Logger)
    ]


@pytest.fixture(scope="session", autouse=True)
def fingerprint_store(tmp_path_factory):
    """Encoder fingerprints kept by the tests (and the recipe runs they
    start) go to a store of the session, not the user's cache."""
    path = tmp_path_factory.mktemp("fingerprints") / "fingerprints.json"
    saved = os.environ.get("MTMM_FINGERPRINT_CACHE")
    os.environ["MTMM_FINGERPRINT_CACHE"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("MTMM_FINGERPRINT_CACHE", None)
    else:
        os.environ["MTMM_FINGERPRINT_CACHE"] = saved


@pytest.fixture(autouse=True)
def logging_restored():
    """Each test leaves logging as it found it. A recipe run in this
    process (the ``refused`` fixture, ``run_main`` in the reliability
    tests) configures logging as SpeechBrain's
    ``create_experiment_directory`` does, with a file handler into its run
    folder: left in place, every later log record would go to that file,
    or fail once the folder is removed."""
    saved = {
        id(logger): (
            logger.handlers[:],
            logger.level,
            logger.disabled,
            logger.propagate,
        )
        for logger in _loggers()
    }
    yield
    for logger in _loggers():
        handlers, level, disabled, propagate = saved.get(
            id(logger), ([], logging.NOTSET, False, True)
        )
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers = list(handlers)
        logger.setLevel(level)
        logger.disabled = disabled
        logger.propagate = propagate


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
def refused(recipe):
    """``refused(corpus, prepared, output, audio, text, extra=None,
    args=())`` runs the recipe's ``main`` in this process as train.py does
    (``run_main``), for a command refused at start-up, and returns the line
    it exits with; a traceback fails the test, and so does a run that is
    not refused. Seconds cheaper than a train.py process (its interpreter
    and imports) for checks that stop before training."""
    main = load_recipe(recipe).main

    def run(corpus, prepared, output, audio, text, extra=None, args=()):
        command = recipe_command(
            recipe,
            corpus / RELEASE_DIRNAME,
            prepared,
            output,
            audio,
            text,
            extra,
        )
        argv = [str(recipe / command[2]), *command[3:], *args]
        with pytest.raises(SystemExit) as stop:
            run_main(main, argv)
        line = str(stop.value.code)
        assert stop.value.code not in (0, None) and "\n" not in line, line
        return line

    return run


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


@pytest.fixture(scope="session")
def tiny_hf_run(
    tmp_path_factory,
    synthetic_corpus,
    synthetic_prepared,
    tiny_hf_encoders,
    train,
):
    """One run with tiny random HF encoders (HuBERT + DeBERTa-v2), shared
    by the modules that test its outputs, its exports and their loaders.

    The paper's configuration at toy width, fold 1, 3 epochs, trained with
    a copy of ``tiny_hf_encoders``, then

    * exported from the command line with ``--onnx --int8`` (``model``),
    * exported again (``mtmm export``, no ONNX) from a copy of the run that
      is then deleted, the export moved elsewhere (``moved_model``),

    and the encoder copy deleted, as a user's would be: every export must
    be self-contained.

    Returns
    -------
    types.SimpleNamespace
        ``run`` (the run folder), ``model``, ``moved_model``, ``rows``
        (the run's test predictions, in recipe order) and
        ``export_stderr`` (what ``mtmm export --onnx --int8`` printed on
        stderr).
    """
    work = tmp_path_factory.mktemp("tiny_hf_run")
    audio, text = tiny_hf_encoders
    encoders = work / "encoders"
    audio = shutil.copytree(audio, encoders / Path(audio).name)
    text = shutil.copytree(text, encoders / Path(text).name)
    run = work / "run"
    train(
        synthetic_corpus,
        synthetic_prepared,
        run,
        audio,
        text,
        {"number_of_epochs": 3},
    )
    model = work / "model"
    command = [sys.executable, "-m", "speechbrain_mtmm", "export"]
    command += ["--run", str(run), "--out", str(model), "--onnx", "--int8"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE_ENV),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    doomed = shutil.copytree(run, work / "doomed_run")
    exported = work / "exported"
    assert mtmm(["export", "--run", str(doomed), "--out", str(exported)]) == 0
    shutil.rmtree(doomed)
    (work / "moved").mkdir()
    moved = Path(shutil.move(exported, work / "moved" / "model"))
    shutil.rmtree(encoders)
    return SimpleNamespace(
        run=run,
        model=model,
        moved_model=moved,
        rows=read_predictions(run),
        export_stderr=result.stderr,
    )


@pytest.fixture(scope="session")
def light_run(tmp_path_factory, synthetic_corpus, synthetic_prepared, train):
    """One run of the light fbank/hashing pair, fold 1, 1 epoch, the
    encoders at their own learning rate, tested in fixed batches: shared
    by the modules that test its log, its folder and its export.

    Returns
    -------
    types.SimpleNamespace
        ``folder`` (the run folder: copy it before changing it) and
        ``extra`` (its overrides on top of ``tiny_overrides()``: the same
        command with them resumes it, other settings are refused).
    """
    extra = {
        "number_of_epochs": 1,
        "lr": 1e-3,
        "lr_encoders": 1e-4,
        "eval_batching": "fixed",
        "max_batch_length": 6.0,
    }
    folder = tmp_path_factory.mktemp("light_run") / "run"
    train(
        synthetic_corpus, synthetic_prepared, folder, "fbank", "hashing", extra
    )
    return SimpleNamespace(folder=folder, extra=extra)


def cluster_missing():
    """Why no SLURM cluster answers here (None when one does)."""
    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed (pip install submitit)"
    if shutil.which("srun") is None:
        return "no srun on PATH (bash .ci/slurm_cluster start makes a cluster)"
    try:
        answer = subprocess.run(
            ["srun", "-N1", "-t", "1", "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "srun hostname did not answer in 60 s"
    if answer.returncode != 0:
        return f"srun hostname failed: {answer.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def cluster():
    """A SLURM cluster that answers; skips (or fails under
    MTMM_REQUIRE_SLURM=1) without one."""
    reason = cluster_missing()
    if reason is not None:
        if os.environ.get("MTMM_REQUIRE_SLURM") == "1":
            pytest.fail(f"MTMM_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
