"""Commands as SLURM jobs, through submitit: submit, watch, cancel, record.

A list of :class:`Command` (an argv, the folder it runs in, the log its
output is appended to) goes to the cluster as one job array
(:func:`submit`, with :class:`SlurmResources`), one array task per command;
:func:`run_commands` also waits for them, reports each as it ends (a failed
one with its log's last lines) and cancels those still queued or running
when the caller is stopped (Ctrl-C, or SIGTERM turned into ``SystemExit``).

The job ids are written to a record in the caller's folder
(``slurm_jobs.json``) as soon as ``sbatch`` returns, before anything waits:
a later call finds the jobs still queued or running (:func:`live_jobs`) and
waits for them instead of submitting them again, and a user can ``scancel``
them. Nothing is submitted without being recorded: the submission and the
record are not interrupted, and jobs whose record cannot be written are
cancelled at once.

A job re-runs its command when SLURM requeues it (a preemption,
``scontrol requeue``, or its time limit: submitit's signal handling
requeues a :class:`Command` as it is); a command that resumes from its own
checkpoints when run again in the same folder, as ``train.py`` does, then
ends as if never interrupted.

Job states come from ``squeue`` (jobs leave it ``MinJobAge`` seconds after
they end), not from submitit's watcher: that one asks ``sacct``, which needs
SLURM's accounting database, and never sees a killed job end without it.
submitit (the ``cluster`` extra, ``pip install speechbrain-mtmm[cluster]``)
writes the sbatch script, pickles the command and requeues on signals; the
rest is written here because nothing in submitit watches jobs without
accounting.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import datetime
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

try:
    import submitit
except ImportError:  # the optional extra: pip install speechbrain-mtmm[cluster]
    submitit = None

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.run_folder import read_json

#: The record of submitted jobs, in the folder given to :func:`submit`
RECORD = "slurm_jobs.json"
#: submitit's sbatch scripts, pickles and job logs, in the same folder
JOBS_FOLDER = "slurm"
#: Job states of a job that is not over (``squeue``'s long names)
ACTIVE_STATES = (
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "PREEMPTED",
)
#: Reasons a pending job gives when it can never start as asked
CANNOT_START = (
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "DependencyNeverSatisfied",
)
#: Seconds between two looks at the queue
POLL_SECONDS = float(os.environ.get("MTMM_SLURM_POLL_SECONDS", "5"))
#: Seconds squeue may fail in a row before the runner gives up (and
#: cancels its jobs)
QUEUE_PATIENCE_SECONDS = 600
#: Lines of a failed job's log shown with its failure
LOG_TAIL_LINES = 15


class SlurmError(ValueError):
    """SLURM cannot take the jobs; the message names the cause (a
    ValueError: the command line reports it in one line)."""


@dataclass(frozen=True)
class SlurmResources:
    """What each job asks for.

    Arguments
    ---------
    partition : str, optional
        ``--partition`` (default: the cluster's default partition).
    gpus : int
        GPUs per job (``--gpus-per-node``); 0 asks for none.
    cpus : int, optional
        CPUs per job (``--cpus-per-task``).
    time : str, optional
        Time limit, as sbatch's ``--time`` (``120``, ``"2:00:00"``,
        ``"1-00:00:00"``; default: the partition's).
    extra : dict
        More sbatch parameters, option name (without ``--``) -> value
        (``True``: a flag), e.g. ``{"account": "lab", "qos": "high"}``.
    max_running : int, optional
        Jobs of the array running at once (``--array=...%N``).

    Example
    -------
    >>> resources = SlurmResources(partition="gpu", gpus=2)
    >>> resources.sbatch_parameters()["gpus_per_node"]
    2
    """

    partition: str = None
    gpus: int = 0
    cpus: int = None
    time: str = None
    extra: dict = field(default_factory=dict)
    max_running: int = None

    @classmethod
    def from_options(
        cls,
        partition=None,
        gpus_per_run=0,
        cpus_per_run=None,
        time=None,
        extra=(),
        max_running=None,
    ):
        """The resources of the ``--slurm_*`` options of ``mtmm cv``.

        Arguments
        ---------
        partition : str, optional
        gpus_per_run : int
        cpus_per_run : int, optional
        time : str, optional
        extra : sequence of str
            ``key=value`` (:func:`parse_extra`).
        max_running : int, optional

        Returns
        -------
        SlurmResources

        Example
        -------
        >>> SlurmResources.from_options(extra=["qos=high"]).extra
        {'qos': 'high'}
        """
        for option, value in (
            ("gpus_per_run", gpus_per_run),
            ("cpus_per_run", cpus_per_run),
            ("max_running", max_running),
        ):
            if value is not None and value < (0 if option[0] == "g" else 1):
                raise ValueError(f"--slurm_{option} {value}: too few")
        return cls(
            partition,
            gpus_per_run or 0,
            cpus_per_run,
            None if time is None else str(time),
            parse_extra(extra),
            max_running,
        )

    def sbatch_parameters(self):
        """The parameters of ``submitit.SlurmExecutor.update_parameters``.

        Returns
        -------
        dict
        """
        parameters = {
            "time": self.time,  # None: no --time, the partition's default
            "nodes": 1,
            "ntasks_per_node": 1,
            "additional_parameters": {"requeue": True, **self.extra},
        }
        if self.partition:
            parameters["partition"] = self.partition
        if self.gpus:
            parameters["gpus_per_node"] = self.gpus
        if self.cpus:
            parameters["cpus_per_task"] = self.cpus
        if self.max_running:
            parameters["array_parallelism"] = self.max_running
        return parameters


def parse_extra(pairs):
    """``key=value`` strings as extra sbatch parameters.

    Arguments
    ---------
    pairs : sequence of str
        E.g. ``["account=lab", "exclusive"]`` (no ``=``: a flag).

    Returns
    -------
    dict

    Example
    -------
    >>> parse_extra(["account=lab", "--qos=high", "exclusive"])
    {'account': 'lab', 'qos': 'high', 'exclusive': True}
    """
    extra = {}
    for pair in pairs or ():
        key, sep, value = pair.lstrip("-").partition("=")
        if not key or (sep and not value):
            raise ValueError(
                f"--slurm_extra {pair!r}: give sbatch parameters as "
                "key=value (e.g. account=lab), or a flag's name"
            )
        extra[key.replace("-", "_")] = value if sep else True
    return extra


@dataclass(frozen=True)
class Command:
    """One command to run as a job; requeued as it is.

    Arguments
    ---------
    name : str
        What it is (unique among those submitted together; the record's
        key).
    argv : tuple of str
        The command.
    cwd : str
        The folder it runs in.
    log : str
        Its stdout and stderr are appended here (after a header line
        naming the job).
    env : tuple of (str, str)
        Environment variables set for it, on top of the job's.

    Example
    -------
    >>> log = getfixture("tmp_path") / "out.log"
    >>> command = Command("hi", ("echo", "hello"), ".", str(log))
    >>> command()
    0
    >>> log.read_text().splitlines()[-1]
    'hello'
    """

    name: str
    argv: tuple
    cwd: str
    log: str
    env: tuple = ()

    def __call__(self):
        """Runs the command; raises ``RuntimeError`` when it fails."""
        log = Path(self.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        job = os.environ.get("SLURM_JOB_ID")
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if array and task:
            job = f"{array}_{task}"
        where = f" SLURM job {job}" if job else ""
        with open(log, "a", encoding="utf-8") as out:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            out.write(
                f"# {stamp}{where}: cd {shlex.quote(str(self.cwd))} && "
                f"{shlex.join(self.argv)}\n"
            )
            out.flush()
            code = subprocess.call(
                list(self.argv),
                cwd=self.cwd,
                env={**os.environ, **dict(self.env)},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_ignore_requeue_signal,
            )
        if code != 0:
            raise RuntimeError(f"{self.name}: exit code {code}, see {log}")
        return code

    def checkpoint(self, *args, **kwargs):
        """submitit's hook before a requeue: the same command again (it
        resumes from its own checkpoints)."""
        return submitit.helpers.DelayedSubmission(self)


def _ignore_requeue_signal():
    # SLURM's warning before the time limit (submitit's SIGUSR2) reaches
    # every process of the job: the command trains on while submitit
    # requeues the job (SIGUSR2 would end it at once)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def torchrun_argv(argv, nproc):
    """A ``python script.py <arguments>`` command as torchrun with ``nproc``
    processes on this node (``--standalone``).

    Arguments
    ---------
    argv : sequence of str
        ``python`` (any interpreter path), the script, its arguments.
    nproc : int
        Processes, one per GPU.

    Returns
    -------
    tuple of str

    Example
    -------
    >>> " ".join(torchrun_argv(["python", "train.py", "x.yaml"], 2)[1:])
    '-m torch.distributed.run --standalone --nproc_per_node=2 train.py x.yaml'

    """
    python, *rest = argv
    return (
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *rest,
    )


def _slurm_call(argv):
    """Runs a SLURM client command; its stdout, or SlurmError."""
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise SlurmError(
            f"{argv[0]} not found: SLURM's client commands are not on PATH "
            "(run on a cluster's login node, or use --launcher local)"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer in 60 s") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise SlurmError(
            f"{shlex.join(argv)} failed: "
            f"{lines[-1] if lines else f'exit code {result.returncode}'}"
        )
    return result.stdout


def check_slurm(resources):
    """Refuses, in one line, what cannot be submitted: submitit missing,
    no ``sbatch``, an unknown partition.

    Arguments
    ---------
    resources : SlurmResources

    Raises
    ------
    SlurmError
    """
    if submitit is None:
        raise SlurmError(
            "--launcher slurm needs submitit: pip install "
            "'speechbrain-mtmm[cluster]' (or pip install submitit)"
        )
    for tool in ("sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(tool) is None:
            raise SlurmError(
                f"{tool} not found: SLURM's client commands are not on PATH "
                "(run on a cluster's login node, or use --launcher local)"
            )
    if resources.partition:
        listed = _slurm_call(["sinfo", "-h", "-o", "%R"]).split()
        if resources.partition not in listed:
            raise SlurmError(
                f"unknown SLURM partition {resources.partition!r}: this "
                f"cluster has {', '.join(listed) or 'none'} (sinfo)"
            )


def queue_states():
    """This user's jobs that SLURM still knows, with state and reason.

    Returns
    -------
    dict
        Job id (``"12"``, or ``"12_3"`` for an array task) ->
        ``(state, reason)``.
    """
    text = _slurm_call(
        ["squeue", "--me", "-h", "-r", "--states=all", "-o", "%i|%T|%r"]
    )
    states = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def cancel(job_ids):
    """``scancel`` of these jobs (quiet about those already over).

    Arguments
    ---------
    job_ids : sequence of str
    """
    if job_ids:
        subprocess.run(
            ["scancel", *job_ids],
            capture_output=True,
            timeout=60,
            check=False,
        )


def read_record(folder):
    """The submissions recorded in a folder (:data:`RECORD`).

    Arguments
    ---------
    folder : str or os.PathLike

    Returns
    -------
    list of dict
        Each with ``time``, ``jobs`` (command name -> job id) and
        ``state`` (``"submitted"`` or ``"cancelled"``); empty when none.
    """
    path = Path(folder) / RECORD
    if not path.is_file():
        return []
    return read_json(path)["submissions"]


def _record(folder, submission):
    """Adds or updates a submission in the record (atomically)."""
    submissions = [
        s for s in read_record(folder) if s["time"] != submission["time"]
    ]
    write_json(
        Path(folder) / RECORD, {"submissions": [*submissions, submission]}
    )


def live_jobs(folder):
    """The recorded jobs still queued or running, by command name.

    Arguments
    ---------
    folder : str or os.PathLike

    Returns
    -------
    dict
        Command name -> job id (the newest submission of each name).
    """
    latest = {}
    for submission in read_record(folder):
        latest.update(submission["jobs"])
    if not latest:
        return {}
    states = queue_states()
    return {
        name: job
        for name, job in latest.items()
        if states.get(job, ("", ""))[0] in ACTIVE_STATES
    }


@contextlib.contextmanager
def _uninterrupted():
    """SIGINT and SIGTERM wait until the block is over (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(
            signum, lambda s, frame: caught.append(s)
        )
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught[:1]:
            os.kill(os.getpid(), signum)


def submit(commands, folder, resources, name="mtmm"):
    """Submits commands as one job array and records their job ids.

    Arguments
    ---------
    commands : list of Command
    folder : str or os.PathLike
        Where the record (:data:`RECORD`) and submitit's files
        (:data:`JOBS_FOLDER`) go.
    resources : SlurmResources
    name : str
        The jobs' name in the queue.

    Returns
    -------
    dict
        Command name -> job id.

    Raises
    ------
    SlurmError
        sbatch refused the jobs (its reason), or their record could not be
        written (they are cancelled).
    """
    if not commands:
        return {}
    folder = Path(folder)
    executor = submitit.SlurmExecutor(folder=folder / JOBS_FOLDER)
    executor.update_parameters(job_name=name, **resources.sbatch_parameters())
    with _uninterrupted():
        try:
            with executor.batch():
                jobs = [executor.submit(command) for command in commands]
        except submitit.core.utils.FailedJobError as error:
            lines = [
                line.split("error:", 1)[-1].strip()
                for line in str(error).splitlines()
                if line.strip()
            ]
            raise SlurmError(
                f"sbatch refused the jobs: {lines[-1] if lines else error}"
            ) from None
        ids = {command.name: job.job_id for command, job in zip(commands, jobs)}
        submission = {
            "time": datetime.datetime.now().isoformat(timespec="microseconds"),
            "jobs": ids,
            "state": "submitted",
        }
        try:
            _record(folder, submission)
        except OSError as error:
            cancel(list(ids.values()))
            raise SlurmError(
                f"{folder / RECORD}: cannot record the submitted jobs "
                f"({error}); they were cancelled"
            ) from None
    return ids


def _log_tail(command, job_id, folder):
    """The last lines of a command's log (or of its job's own log)."""
    logs = [
        Path(command.log),
        Path(folder) / JOBS_FOLDER / f"{job_id}_0_log.err",
    ]
    for log in logs:
        if log.is_file() and log.stat().st_size:
            lines = log.read_text(errors="replace").splitlines()
            tail = "\n".join(f"    {x}" for x in lines[-LOG_TAIL_LINES:])
            return log, tail
    return logs[0], "    (no output)"


def run_commands(
    commands,
    folder,
    resources,
    succeeded=None,
    first_alone=False,
    progress=True,
    desc="jobs",
):
    """Runs commands as SLURM jobs and waits for them all.

    Commands whose recorded job is still queued or running (a previous
    call that was stopped) are waited for, not submitted again. Each job
    is counted on the progress bar as it ends; a failed one is reported
    with its log and the last lines of it, and the others go on. When the
    caller is stopped (``KeyboardInterrupt``, ``SystemExit``) the jobs not
    yet over are cancelled and the record says so.

    Arguments
    ---------
    commands : list of Command
    folder : str or os.PathLike
        Where the record and submitit's files go.
    resources : SlurmResources
    succeeded : callable, optional
        ``succeeded(command, state)``, whether an ended job did its work
        (default: its state is ``COMPLETED``; ``state`` is ``"GONE"`` for a
        job that left the queue unseen).
    first_alone : bool
        Submit the first command alone, the rest once it ended (it makes
        what the others share); with jobs of an earlier submission still
        queued or running, submit the rest once those ended.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        The bar's label.

    Returns
    -------
    list of Command
        Those that failed.

    Raises
    ------
    SlurmError
        As :func:`check_slurm` and :func:`submit`.
    """
    check_slurm(resources)
    if succeeded is None:

        def succeeded(command, state):
            """A job succeeded when SLURM says it completed."""
            return state == "COMPLETED"

    folder = Path(folder)
    adopted = live_jobs(folder)
    fresh = [c for c in commands if c.name not in adopted]
    by_name = {c.name: c for c in commands}
    waves = [fresh]
    if first_alone and adopted:  # one of them may be preparing
        waves = [[], fresh]
    elif first_alone and len(fresh) > 1:
        waves = [fresh[:1], fresh[1:]]
    if adopted:
        tqdm.write(
            f"{len(adopted)} job(s) of an earlier submission still queued "
            f"or running: waiting for them ({', '.join(adopted.values())})",
            file=sys.stderr,
        )
    failed = []
    waiting = {job: by_name[n] for n, job in adopted.items() if n in by_name}
    bar = tqdm(
        total=len(waiting) + len(fresh),
        unit="run",
        desc=desc,
        disable=not progress,
    )
    with bar:
        try:
            for wave in waves:
                # a stop comes once the new jobs are among those cancelled
                with _uninterrupted():
                    ids = submit(wave, folder, resources)
                    waiting.update({j: by_name[n] for n, j in ids.items()})
                if ids:
                    tqdm.write(
                        f"submitted {len(ids)} SLURM job(s): "
                        f"{_id_range(list(ids.values()))} (recorded in "
                        f"{folder / RECORD})",
                        file=sys.stderr,
                    )
                _wait(waiting, folder, succeeded, failed, bar)
        except BaseException:
            with _uninterrupted():
                cancel(list(waiting))
                _mark_cancelled(folder, set(waiting))
            if waiting:
                tqdm.write(
                    f"cancelled {len(waiting)} SLURM job(s): "
                    f"{' '.join(waiting)}",
                    file=sys.stderr,
                )
            raise
    return failed


def _id_range(ids):
    """``12_0 .. 12_3`` for an array's ids, else the ids."""
    return ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"


def _mark_cancelled(folder, job_ids):
    """Marks the submissions holding these jobs as cancelled."""
    for submission in read_record(folder):
        if set(submission["jobs"].values()) & job_ids:
            with contextlib.suppress(OSError):
                _record(folder, {**submission, "state": "cancelled"})


def _wait(waiting, folder, succeeded, failed, bar):
    """Waits until the jobs of ``waiting`` (job id -> Command) end,
    reporting each; ended jobs leave ``waiting``."""
    misses = 0
    while waiting:
        try:
            states = queue_states()
            misses = 0
        except SlurmError as error:
            # a controller that restarts: the jobs go on meanwhile
            misses += 1
            if misses * POLL_SECONDS > QUEUE_PATIENCE_SECONDS:
                raise
            if misses == 1:
                tqdm.write(f"{error}; asking again", file=sys.stderr)
            time.sleep(POLL_SECONDS)
            continue
        for job, command in list(waiting.items()):
            state, reason = states.get(job, ("GONE", ""))
            if state in ACTIVE_STATES:
                if state != "PENDING" or reason not in CANNOT_START:
                    continue
                cancel([job])
                state = f"cannot start ({reason})"
            del waiting[job]
            bar.update()
            if succeeded(command, state):
                continue
            failed.append(command)
            log, tail = _log_tail(command, job, folder)
            tqdm.write(
                f"FAILED {command.name} (SLURM job {job}, {state}): its "
                f"folder {Path(command.log).parent}, the end of {log}:\n"
                f"{tail}",
                file=sys.stderr,
            )
        if waiting:
            time.sleep(POLL_SECONDS)
