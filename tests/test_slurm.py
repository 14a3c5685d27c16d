"""mtmm cv --launcher slurm, against a real SLURM scheduler.

The tests marked slow need a cluster whose ``srun hostname`` answers:
``bash .ci/slurm_cluster start`` makes a one-node one on a Debian machine
(as root), and CI does so before ``make test-slow``. Without one they are
skipped with the reason, unless ``MTMM_REQUIRE_SLURM=1`` (CI, once its
cluster started), where they fail. The bad-input tests that need no
cluster are fast. Real sweeps use the synthetic corpus and the light
encoders (2 epochs); the runner's bookkeeping (failures, cancelling,
reruns) is checked with a fake recipe whose ``train.py`` trains nothing.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechbrain_mtmm import slurm
from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.experiments import sweep
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV, recipe_command

RECIPE = (
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)
YAML = RECIPE / "hparams" / "iemocap.yaml"
# the runner looks at the queue every second (default 5)
ENV = dict(
    os.environ,
    **{k: OFFLINE_ENV[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")},
    MTMM_SLURM_POLL_SECONDS="1",
)
# A recipe that trains nothing: it records its settings, sleeps --sleep
# seconds, fails for the folds of --fail_folds (or of $FAKE_FAIL_FOLDS),
# else writes a one-utterance result
FAKE_TRAIN = """
import json, os, sys, time
import yaml
args = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
out = args.pop("output_folder")
settings = {key: yaml.safe_load(value) for key, value in args.items()}
json.dump({"settings": settings}, open(f"{out}/run_config.json", "w"))
print("fake run, fold", args["fold"], flush=True)
time.sleep(float(args.get("sleep", 0)))
failing = args.get("fail_folds", os.environ.get("FAKE_FAIL_FOLDS", ""))
if args["fold"] in failing.split(","):
    sys.exit("fake failure")
row = {"id": "u", "emo": "neu", "pred_emo": "neu", "valence": 3.0,
       "pred_valence": 3.0, "arousal": 3.0, "pred_arousal": 3.0,
       "speaker": "Ses01F", "improvised": True}
open(os.path.join(out, "test_predictions.jsonl"), "w").write(json.dumps(row))
results = {"WA": 1.0, "UA": 1.0, "macro_F1": 1.0, "CCC_valence": 0.0,
           "CCC_arousal": 0.0, "confusion": [[1, 0], [0, 0]],
           "labels": ["neu", "hap"], "n": 1}
json.dump(results, open(os.path.join(out, "test_results.json"), "w"))
"""


@pytest.fixture
def fake_recipe(tmp_path):
    recipe = tmp_path / "recipe"
    (recipe / "hparams").mkdir(parents=True)
    (recipe / "train.py").write_text(FAKE_TRAIN)
    (recipe / "hparams" / "fake.yaml").write_text("experiment: fake\n")
    return recipe / "hparams" / "fake.yaml"


def fake_sweep(fake_recipe, output, *args):
    """mtmm cv arguments of the fake recipe's session folds 1-3, seed 1."""
    return [
        "cv",
        str(fake_recipe),
        "--protocol",
        "session",
        "--folds",
        "1",
        "2",
        "3",
        "--seeds",
        "1",
        "--output",
        str(output),
        *args,
    ]


def tiny_sweep(output, corpus, prepared, launcher, folds=("1", "2"), epochs=2):
    """mtmm cv arguments of a light-encoder sweep (2 epochs), seed 1."""
    command = recipe_command(
        RECIPE,
        corpus / "IEMOCAP_full_release",
        prepared,
        "unused",
        "fbank",
        "hashing",
        {"number_of_epochs": epochs},
    )
    overrides = [a for a in command[3:] if not a.startswith("--output_f")]
    return [
        "cv",
        str(YAML),
        "--protocol",
        "speaker",
        "--folds",
        *folds,
        "--seeds",
        "1",
        "--output",
        str(output),
        "--launcher",
        launcher,
        *overrides,
    ]


def mtmm_process(args, log):
    """``python -m speechbrain_mtmm <args>`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "speechbrain_mtmm", *args],
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def finish(process, log, timeout=900):
    """Waits for a runner; its exit code (fails the test on a hang)."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the runner hung:\n{Path(log.name).read_text()[-3000:]}")


def queued(job_ids):
    """Those of the jobs SLURM lists as not over."""
    states = slurm.queue_states()
    return [
        job
        for job in job_ids
        if states.get(job, ("",))[0] in slurm.ACTIVE_STATES
    ]


def recorded_jobs(output):
    """Command name -> job id, of every recorded submission."""
    jobs = {}
    for submission in slurm.read_record(output):
        jobs.update(submission["jobs"])
    return jobs


def wait_for(condition, timeout, what, poll=0.5):
    """Polls ``condition`` every ``poll`` seconds until true; fails naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s")
        time.sleep(poll)


def run_outputs(run):
    """A run's results and predictions, as written."""
    return (
        json.loads((run / "test_results.json").read_text()),
        (run / "test_predictions.jsonl").read_text(),
    )


# -- bad input, no cluster needed -------------------------------------------


def test_without_sbatch_the_slurm_launcher_is_one_line_and_submits_nothing(
    fake_recipe, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    output = tmp_path / "out"
    status = mtmm(fake_sweep(fake_recipe, output, "--launcher", "slurm"))
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    if slurm.submitit is None:
        assert "needs submitit" in err[-1]
    else:
        assert err[-1].startswith("mtmm cv: SlurmError: sbatch not found")
    assert not (output / slurm.RECORD).exists()
    assert not list(output.glob("session_fold*"))


def test_slurm_extra_parameters_must_be_key_value(
    fake_recipe, tmp_path, capsys
):
    args = ["--launcher", "slurm", "--slurm_extra", "account="]
    assert mtmm(fake_sweep(fake_recipe, tmp_path / "out", *args)) == 1
    assert "--slurm_extra 'account='" in capsys.readouterr().err


def test_more_than_one_gpu_per_run_runs_the_fold_under_torchrun(
    fake_recipe, tmp_path, monkeypatch
):
    submitted = {}

    def run_commands(commands, folder, resources, **kwargs):
        submitted.update(commands=commands, resources=resources)
        return []

    monkeypatch.setattr(sweep, "run_commands", run_commands)
    args = ["--launcher", "slurm", "--slurm_gpus_per_run", "4"]
    assert mtmm(fake_sweep(fake_recipe, tmp_path / "out", *args)) == 0
    command = submitted["commands"][1]
    assert command.name == "session_fold2/seed1"
    assert command.argv[:5] == (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
    )
    assert command.argv[5:7] == ("train.py", "hparams/fake.yaml")
    assert command.cwd == str(fake_recipe.parents[1])
    parameters = submitted["resources"].sbatch_parameters()
    assert parameters["gpus_per_node"] == 4
    assert parameters["ntasks_per_node"] == 1


def test_a_controller_that_does_not_answer_for_a_while_cancels_nothing(
    tmp_path, capsys, monkeypatch
):
    down = slurm.SlurmError("squeue failed: Unable to contact controller")
    answers = [down, down, {"5_0": ("RUNNING", "None")}, {}]
    cancelled = []

    def queue_states():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(slurm, "queue_states", queue_states)
    monkeypatch.setattr(slurm, "check_slurm", lambda resources: None)
    monkeypatch.setattr(slurm, "live_jobs", lambda folder: {})
    monkeypatch.setattr(slurm, "submit", lambda *args: {"a": "5_0"})
    monkeypatch.setattr(slurm, "cancel", cancelled.extend)
    monkeypatch.setattr(slurm, "POLL_SECONDS", 0)
    command = slurm.Command("a", ("true",), ".", str(tmp_path / "a.log"))
    failed = slurm.run_commands(
        [command],
        tmp_path,
        slurm.SlurmResources(),
        succeeded=lambda command, state: state == "GONE",
        progress=False,
    )
    assert failed == [] and cancelled == [] and answers == []
    assert "Unable to contact controller; asking again" in (
        capsys.readouterr().err
    )


# -- against the cluster -----------------------------------------------------


@pytest.mark.slow
def test_an_unknown_partition_is_one_line_and_submits_nothing(
    cluster, fake_recipe, tmp_path, capsys
):
    output = tmp_path / "out"
    args = ["--launcher", "slurm", "--slurm_partition", "no_such_partition"]
    assert mtmm(fake_sweep(fake_recipe, output, *args)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "mtmm cv: SlurmError: unknown SLURM partition 'no_such_partition'"
    )
    assert not (output / slurm.RECORD).exists()


@pytest.mark.slow
def test_a_failed_job_is_reported_with_its_log_and_the_others_go_on(
    cluster, fake_recipe, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(slurm, "POLL_SECONDS", 1)
    output = tmp_path / "out"
    args = ["--launcher", "slurm", "--fail_folds=2"]
    assert mtmm(fake_sweep(fake_recipe, output, *args)) == 1
    err = capsys.readouterr().err
    run = output / "session_fold2" / "seed1"
    assert "FAILED session_fold2/seed1 (SLURM job " in err
    assert f"its folder {run}" in err
    assert "    fake failure" in err  # the last lines of its log
    for fold in (1, 3):
        run = output / f"session_fold{fold}" / "seed1"
        assert (run / "test_results.json").is_file()


@pytest.mark.slow
def test_a_rerun_submits_only_the_incomplete_runs(
    cluster, fake_recipe, tmp_path, monkeypatch
):
    monkeypatch.setattr(slurm, "POLL_SECONDS", 1)
    output = tmp_path / "out"
    args = fake_sweep(fake_recipe, output, "--launcher", "slurm")
    monkeypatch.setenv("FAKE_FAIL_FOLDS", "2")  # the jobs inherit it
    assert mtmm(args) == 1
    monkeypatch.delenv("FAKE_FAIL_FOLDS")
    assert mtmm(args) == 0
    submissions = slurm.read_record(output)
    assert [list(s["jobs"]) for s in submissions] == [
        ["session_fold1/seed1"],  # alone: the fake corpus is not prepared
        ["session_fold2/seed1", "session_fold3/seed1"],
        ["session_fold2/seed1"],
    ]
    assert (output / "session_fold2/seed1/test_results.json").is_file()


@pytest.mark.slow
def test_a_job_that_cannot_start_is_reported_with_the_reason(
    cluster, fake_recipe, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(slurm, "POLL_SECONDS", 1)
    output = tmp_path / "out"
    args = ["--launcher", "slurm", "--slurm_cpus_per_run", "100000"]
    assert mtmm(fake_sweep(fake_recipe, output, *args)) == 1
    err = capsys.readouterr().err
    assert err.count("cannot start (PartitionConfig)") == 3, err
    assert queued(list(recorded_jobs(output).values())) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
def test_a_stopped_runner_cancels_its_jobs(
    cluster, fake_recipe, tmp_path, signum
):
    output = tmp_path / "out"

    def running():
        """The recorded jobs, once one runs."""
        jobs = list(recorded_jobs(output).values())
        states = slurm.queue_states()
        return any(states.get(j, ("",))[0] == "RUNNING" for j in jobs)

    with open(tmp_path / "runner.log", "w") as log:
        runner = mtmm_process(
            fake_sweep(fake_recipe, output, "--launcher", "slurm")
            + ["--sleep=600"],
            log,
        )
        wait_for(running, 120, "a job running")
        jobs = list(recorded_jobs(output).values())
        runner.send_signal(signum)
        assert finish(runner, log, 120) != 0
    wait_for(lambda: not queued(jobs), 60, f"jobs {jobs} gone from squeue")
    assert [s["state"] for s in slurm.read_record(output)] == ["cancelled"]
    assert "cancelled" in (tmp_path / "runner.log").read_text()


@pytest.fixture(scope="module")
def both_sweeps(
    cluster, tmp_path_factory, synthetic_corpus, synthetic_prepared
):
    """The same 2-fold sweep, run here and as SLURM jobs."""
    base = tmp_path_factory.mktemp("launchers")
    outputs = {}
    for launcher in ("local", "slurm"):
        output = base / launcher
        with open(base / f"{launcher}.log", "w") as log:
            process = mtmm_process(
                tiny_sweep(
                    output, synthetic_corpus, synthetic_prepared, launcher
                ),
                log,
            )
            assert finish(process, log) == 0, Path(log.name).read_text()[-3000:]
        outputs[launcher] = output
    return outputs


@pytest.mark.slow
def test_a_slurm_sweep_ends_with_the_results_of_the_local_one(both_sweeps):
    local, cluster_run = both_sweeps["local"], both_sweeps["slurm"]
    for fold in (1, 2):
        name = f"speaker_fold{fold}/seed1"
        assert run_outputs(cluster_run / name) == run_outputs(local / name)
        assert "SLURM job" in (cluster_run / name / "stdout.log").read_text()
    ours = json.loads((cluster_run / "cv_results.json").read_text())
    theirs = json.loads((local / "cv_results.json").read_text())
    assert ours["summary"] == theirs["summary"]
    assert (cluster_run / "report.md").is_file()


@pytest.mark.slow
def test_a_requeued_job_resumes_and_ends_with_the_uninterrupted_results(
    cluster, tmp_path, synthetic_corpus, synthetic_prepared
):
    # 8 epochs: the job is requeued after the first, well before its end
    # (with 2, a fast machine finished the run before the poll saw epoch 1)
    sweep = [synthetic_corpus, synthetic_prepared]
    local = tmp_path / "local"
    with open(tmp_path / "local.log", "w") as log:
        process = mtmm_process(
            tiny_sweep(local, *sweep, "local", ["1"], epochs=8), log
        )
        assert finish(process, log) == 0, Path(log.name).read_text()[-3000:]
    output = tmp_path / "requeued"
    run = output / "speaker_fold1" / "seed1"
    with open(tmp_path / "runner.log", "w") as log:
        runner = mtmm_process(
            tiny_sweep(output, *sweep, "slurm", ["1"], epochs=8), log
        )
        wait_for(
            lambda: (
                (run / "train_log.txt").is_file()
                and "epoch: 1," in (run / "train_log.txt").read_text()
            ),
            600,
            "the first epoch",
            poll=0.05,
        )
        assert not (run / "test_results.json").exists(), "too late"
        job = recorded_jobs(output)["speaker_fold1/seed1"]
        subprocess.run(["scontrol", "requeue", job], check=True)
        # a requeued job waits (BeginTime) before it may start again
        wait_for(
            lambda: slurm.queue_states()[job][0] == "PENDING", 60, "requeued"
        )
        subprocess.run(
            ["scontrol", "update", f"JobId={job}", "StartTime=now"],
            check=True,
        )
        assert finish(runner, log) == 0, Path(log.name).read_text()[-3000:]
    local = local / "speaker_fold1" / "seed1"
    assert run_outputs(run) == run_outputs(local)
    attempts = (run / "stdout.log").read_text().split(f"SLURM job {job}: ")
    assert len(attempts) == 3, "the job did not run twice"
    assert "Loading a checkpoint" in attempts[2]
    train_log = (run / "train_log.txt").read_text()
    assert train_log.count("epoch: 1,") == 1, "epoch 1 was trained again"


@pytest.mark.slow
def test_a_rerun_waits_for_the_recorded_jobs_of_a_killed_runner(
    cluster, fake_recipe, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(slurm, "POLL_SECONDS", 1)
    output = tmp_path / "out"
    args = fake_sweep(fake_recipe, output, "--launcher", "slurm", "--sleep=20")
    with open(tmp_path / "runner.log", "w") as log:
        runner = mtmm_process(args, log)
        wait_for(lambda: recorded_jobs(output), 120, "a job recorded")
        runner.kill()  # SIGKILL: it cancels nothing
        runner.wait()
    first = recorded_jobs(output)["session_fold1/seed1"]
    assert queued([first]) == [first]
    assert mtmm(args) == 0
    assert f"waiting for them ({first})" in capsys.readouterr().err
    assert [list(s["jobs"]) for s in slurm.read_record(output)] == [
        ["session_fold1/seed1"],
        ["session_fold2/seed1", "session_fold3/seed1"],
    ]
