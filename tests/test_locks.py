"""One writer per run folder and per sweep; a runner's runs end with it.

The CV runner cases use a fake recipe whose ``train.py`` writes its pid
and sleeps, so that a run is surely alive when the runner is stopped.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechbrain_mtmm.locks import FolderBusyError, FolderLock
from speechbrain_mtmm.run_folder import RUN_LOCK, SWEEP_LOCK
from speechbrain_mtmm.testing.recipes import (
    OFFLINE_ENV,
    recipe_command,
    run_recipe_command,
)

SLEEPING_TRAIN = """
import os, sys, time
args = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
out = args["output_folder"]
open(os.path.join(out, "pid.txt"), "w").write(str(os.getpid()))
time.sleep(120)
"""


def wait_for(condition, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    """True while ``pid`` runs (a zombie of this test counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fin:
            return fin.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_held_folder_is_refused_naming_its_holder(tmp_path):
    with FolderLock(tmp_path, RUN_LOCK):
        with pytest.raises(FolderBusyError, match=f"process {os.getpid()} "):
            FolderLock(tmp_path, RUN_LOCK).acquire()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from speechbrain_mtmm.locks import FolderLock\n"
            f"FolderLock(sys.argv[1], {RUN_LOCK!r}).acquire()\n"
            "print(os.getpid(), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert holder.returncode == -signal.SIGKILL
    with caplog.at_level(logging.WARNING, logger="speechbrain_mtmm.locks"):
        with FolderLock(tmp_path, RUN_LOCK) as lock:
            assert lock.held
    pid = holder.stdout.strip()
    assert f"taking over from process {pid} " in caplog.text


def test_a_released_lock_leaves_an_empty_file(tmp_path):
    with FolderLock(tmp_path, RUN_LOCK):
        assert "process" in (tmp_path / RUN_LOCK).read_text()
    assert (tmp_path / RUN_LOCK).read_text() == ""


@pytest.mark.slow
def test_a_second_training_into_a_live_run_folder_is_refused(
    tmp_path, synthetic_corpus, synthetic_prepared, recipe
):
    output = tmp_path / "run"
    command = recipe_command(
        recipe,
        synthetic_corpus / "IEMOCAP_full_release",
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
        {"number_of_epochs": 500},
    )
    first = subprocess.Popen(
        command,
        cwd=recipe,
        env=dict(os.environ, **OFFLINE_ENV),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: (output / "train_log.txt").exists())
        second = run_recipe_command(recipe, command, check=False)
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"RunFolderError: {output}: this run folder is in use by process "
        f"{first.pid} on "
    )
    assert last.endswith("; wait for it to end or end it")


@pytest.fixture
def sleeping_sweep(tmp_path):
    """A ``mtmm cv`` runner whose one run sleeps: (runner, run folder,
    output, command); the runner is killed at the end if still alive."""
    recipe = tmp_path / "recipe"
    (recipe / "hparams").mkdir(parents=True)
    (recipe / "train.py").write_text(SLEEPING_TRAIN)
    yaml = recipe / "hparams" / "fake.yaml"
    yaml.write_text("experiment: fake\n")
    output = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "speechbrain_mtmm",
        "cv",
        str(yaml),
        "--protocol=session",
        "--folds",
        "1",
        "--seeds",
        "1",
        "--output",
        str(output),
    ]
    runner = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run = output / "session_fold1" / "seed1"
    assert wait_for(lambda: (run / "pid.txt").exists())
    yield runner, run, output, command
    if runner.poll() is None:
        runner.kill()
        runner.wait()
    pid = int((run / "pid.txt").read_text())
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"]
)
def test_a_stopped_cv_runner_ends_its_runs(sleeping_sweep, stop):
    runner, run, _, _ = sleeping_sweep
    child = int((run / "pid.txt").read_text())
    runner.send_signal(stop)
    runner.wait(30)
    assert wait_for(lambda: not alive(child), 15), "the run trains on"


@pytest.mark.slow
def test_a_second_cv_runner_on_a_held_sweep_is_refused(sleeping_sweep):
    runner, _, output, command = sleeping_sweep
    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 1
    assert (
        f"mtmm cv: FolderBusyError: {output}: this sweep is in use by "
        f"process {runner.pid} on " in second.stderr
    )
    assert "process" in (Path(output) / SWEEP_LOCK).read_text()
