"""Cross-validation runner: every fold x seed of a recipe, then a report.

Each fold x seed is its own recipe run, in its own folder::

    <output>/<protocol>_fold<k>/seed<s>/   (train_log.txt, save/, stdout.log,
                                            test_results.json, ...)

run from the recipe folder (the parent of the YAML's ``hparams/`` folder) as
``python train.py <yaml> --protocol=P --fold=k --seed=s --output_folder=...
<overrides>``. A run is complete once its ``test_results.json`` exists:
complete runs are skipped, so a crashed sweep is resumed by running the same
command again (incomplete runs restart from their own checkpoints). Runs go
``--jobs`` at a time; when CUDA GPUs are visible each job slot gets one
(``CUDA_VISIBLE_DEVICES``, round-robin). A failed run is reported with the
path of its log and the others go on; the exit code is then 1. At the end
the complete runs are summarised (:mod:`.aggregate`) and reported
(:mod:`.reports`). With ``--launcher slurm`` the incomplete runs go to a
SLURM cluster instead, one job each, running the same command
(:mod:`.slurm`; :func:`run_on_slurm`).

One runner per sweep folder (``sweep.lock``) and one trainer per run
folder (``run.lock``, taken by ``train.py``): a second runner on the same
sweep is refused. A runner that is stopped (Ctrl-C, SIGTERM, or on Linux
even SIGKILL) ends the runs it started, so that a restart does not train
beside them.

Usage (from anywhere; recipe overrides are passed on as ``--key=value``)::

    mtmm cv recipes/IEMOCAP/multimodal_emotion/hparams/iemocap.yaml \\
        --protocol speaker --seeds 1 2 3 [--folds 1 2 ...] [--jobs N] \\
        [--output DIR] [--print-commands] --data_folder=/data/IEMOCAP ...

``mtmm table`` runs the paper's ablation table the same way
(:mod:`speechbrain_mtmm.experiments.ablation`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import ctypes
import datetime
import functools
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import speechbrain as sb
import torch
from tqdm import tqdm

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.corpora import corpus_of_recipe
from speechbrain_mtmm.data.corpus import read_corpus_info
from speechbrain_mtmm.experiments.aggregate import aggregate
from speechbrain_mtmm.experiments.options import DEFAULT_SEEDS, recipe_folder
from speechbrain_mtmm.experiments.reports import write_report
from speechbrain_mtmm.locks import FolderLock
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import (
    REPORT,
    STDOUT_LOG,
    SWEEP_LOCK,
    SWEEP_PLAN,
    TEST_RESULTS,
    is_complete,
    stale_settings,
    sweep_run_name,
)
from speechbrain_mtmm.slurm import (
    Command,
    SlurmResources,
    run_commands,
    torchrun_argv,
)
from speechbrain_mtmm.training.hparams import corpus_overrides
from speechbrain_mtmm.training.run import run_settings

#: Where the runs of a sweep train: here, or as SLURM jobs
LAUNCHERS = ("local", "slurm")
# Seconds a run is given to end after SIGTERM before it is killed
END_GRACE_SECONDS = 10


@dataclass(frozen=True)
class CVRun:
    """One fold x seed of a cross-validation sweep.

    Arguments
    ---------
    protocol : str
        ``"speaker"`` or ``"session"``.
    fold : int
        Fold number (1-based).
    seed : int
        Random seed.
    folder : pathlib.Path
        The run's ``output_folder``.
    command : tuple of str
        The ``train.py`` command line.
    cwd : pathlib.Path
        The recipe folder the command runs in.
    hparams_file : pathlib.Path, optional
        The recipe YAML.
    overrides : str
        The run's overrides as YAML text (what its settings come from).

    Example
    -------
    >>> folder = Path("cv/speaker_fold2/seed1")
    >>> run = CVRun("speaker", 2, 1, folder, (), Path("."))
    >>> run.name, run.complete
    ('speaker_fold2/seed1', False)
    """

    protocol: str
    fold: int
    seed: int
    folder: Path
    command: tuple
    cwd: Path
    hparams_file: Path = None
    overrides: str = ""

    @property
    def name(self):
        """``<protocol>_fold<k>/seed<s>``, the run folder inside the sweep."""
        return sweep_run_name(self.protocol, self.fold, self.seed)

    @property
    def complete(self):
        """True once the run has written its test results."""
        return is_complete(self.folder)

    @property
    def log(self):
        """Where the run's stdout and stderr go."""
        return self.folder / STDOUT_LOG

    def shell_command(self):
        """The run as one shell line: ``cd <recipe> && python train.py``
        with its arguments.

        Returns
        -------
        str
        """
        return f"cd {shlex.quote(str(self.cwd))} && {shlex.join(self.command)}"


def experiment_name(hparams_file, overrides):
    """The sweep's name: ``--experiment``, the YAML's ``experiment:`` or
    the YAML's stem.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe YAML.
    overrides : dict
        Command-line overrides.

    Returns
    -------
    str

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("seed: 1\\nexperiment: paper  # the paper\\n")
    >>> experiment_name(path, {})
    'paper'
    >>> experiment_name("x.yaml", {"experiment": "wavlm"})
    'wavlm'
    """
    if "experiment" in overrides:
        return overrides["experiment"]
    path = Path(hparams_file)
    if path.is_file():
        # a plain top-level "experiment: name" line (no !ref)
        text = path.read_text(encoding="utf-8")
        match = re.search(r"^experiment:\s*([\w.\-]+)\s*(#.*)?$", text, re.M)
        if match:
            return match.group(1)
    return path.stem


def plan_runs(hparams_file, protocol, folds, seeds, output, overrides):
    """The runs of a sweep, fold-major: fold 1 seed 1, fold 1 seed 2, and
    so on.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe YAML.
    protocol : str
        ``"speaker"`` or ``"session"``.
    folds : sequence of int
        Folds to run (``None``: all folds of the protocol).
    seeds : sequence of int
        Seeds to run.
    output : str or os.PathLike
        The sweep folder.
    overrides : dict
        Recipe overrides (strings), passed to every run.

    Returns
    -------
    list of CVRun

    Example
    -------
    >>> recipe = getfixture("tmp_path") / "recipe"
    >>> (recipe / "hparams").mkdir(parents=True)
    >>> _ = (recipe / "train.py").write_text("")
    >>> _ = (recipe / "hparams" / "iemocap.yaml").write_text("seed: 1")
    >>> runs = plan_runs(recipe / "hparams" / "iemocap.yaml", "session",
    ...                  None, [1, 2], "/tmp/cv", {"lr": "0.1"})
    >>> len(runs), runs[1].name
    (10, 'session_fold1/seed2')
    >>> for arg in runs[1].command[1:]:
    ...     print(arg)
    train.py
    hparams/iemocap.yaml
    --protocol=session
    --fold=1
    --seed=2
    --output_folder=/tmp/cv/session_fold1/seed2
    --lr=0.1
    """
    # the protocols of a prepared corpus (mtmm prepare), or those the
    # recipe's corpus is prepared with
    info = read_corpus_info(overrides.get("data_folder", ""))
    record = corpus_of_recipe(recipe_folder(hparams_file))
    protocols = record.protocols if info is None else info["protocols"]
    if protocols is None:
        raise ValueError(
            f"{record.name}: the folds are made when the corpus is "
            f"prepared: prepare it first (mtmm prepare {record.name}) and "
            "give its folder as --data_folder"
        )
    if protocol not in protocols:
        raise ValueError(
            f"protocol must be one of {tuple(protocols)}: {protocol!r}"
        )
    count = protocols[protocol]
    folds = list(folds or range(1, count + 1))
    bad = [k for k in folds if not 1 <= k <= count]
    if bad:
        raise ValueError(f"the {protocol} protocol has folds 1-{count}: {bad}")
    cwd = recipe_folder(hparams_file)
    yaml_path = Path(hparams_file).resolve()
    yaml_arg = str(
        yaml_path.relative_to(cwd) if cwd in yaml_path.parents else yaml_path
    )
    extra = [f"--{key}={value}" for key, value in overrides.items()]
    output = Path(output).resolve()
    runs = []
    for fold in folds:
        for seed in seeds:
            folder = output / sweep_run_name(protocol, fold, seed)
            command = (
                sys.executable,
                "train.py",
                yaml_arg,
                f"--protocol={protocol}",
                f"--fold={fold}",
                f"--seed={seed}",
                f"--output_folder={folder}",
                *extra,
            )
            # what train.py will take as overrides (not SpeechBrain's run
            # options such as --device)
            _, _, text = sb.parse_arguments([str(yaml_path), *command[3:]])
            runs.append(
                CVRun(
                    protocol,
                    fold,
                    seed,
                    folder,
                    command,
                    cwd,
                    yaml_path,
                    text,
                )
            )
    return runs


def visible_gpus():
    """The CUDA devices to share among jobs.

    ``CUDA_VISIBLE_DEVICES`` when set (empty or ``-1``: none), else every
    device torch sees.

    Returns
    -------
    list of str
        Device ids, as ``CUDA_VISIBLE_DEVICES`` values.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        return [] if ids[:1] == ["-1"] else ids
    return [str(i) for i in range(torch.cuda.device_count())]


class Children:
    """The runs this runner has started, ended when it ends.

    On Linux each child also asks the kernel for SIGTERM when the runner's
    thread that started it dies (``PR_SET_PDEATHSIG``), which covers a
    runner killed with SIGKILL; elsewhere only an orderly end (an
    exception, SIGINT, SIGTERM) ends them.
    """

    def __init__(self):
        self.live = set()
        self.lock = threading.Lock()
        self.closed = False

    def start(self, command, **kwargs):
        """``subprocess.Popen(command, **kwargs)``, registered; refused
        once :meth:`end_all` has begun (a run a worker thread was about to
        start when the runner was stopped).

        Raises
        ------
        RuntimeError
            When the runner is ending.
        """
        if sys.platform == "linux":
            kwargs["preexec_fn"] = functools.partial(
                _die_with_parent, os.getpid()
            )
        with self.lock:  # end_all either sees this child or stops it here
            if self.closed:
                raise RuntimeError("the CV runner is ending")
            process = subprocess.Popen(command, **kwargs)
            self.live.add(process)
        return process

    def wait(self, process):
        """Waits for a child; returns its exit code."""
        code = process.wait()
        with self.lock:
            self.live.discard(process)
        return code

    def end_all(self):
        """SIGTERM to every live child, SIGKILL to those still alive after
        ``END_GRACE_SECONDS``; no child starts afterwards. A second Ctrl-C
        or SIGTERM meanwhile does not cut this short."""
        main = threading.current_thread() is threading.main_thread()
        ignored = {}
        if main:
            for signum in (signal.SIGINT, signal.SIGTERM):
                ignored[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            with self.lock:
                self.closed = True
                live = list(self.live)
            for process in live:
                process.terminate()
            for process in live:
                try:
                    process.wait(END_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            for signum, handler in ignored.items():
                signal.signal(signum, handler)


if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1


def _die_with_parent(parent):
    """In a child, before ``exec``: SIGTERM when the parent dies (and
    exit now if it died before this ran)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


CHILDREN = Children()


def execute(run, gpu=None):
    """Runs one recipe run, appending its output to ``<run>/stdout.log``.

    Arguments
    ---------
    run : CVRun
        The run.
    gpu : str, optional
        The ``CUDA_VISIBLE_DEVICES`` value for this run.

    Returns
    -------
    bool
        True if the run exited cleanly and wrote its test results.
    """
    run.folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    with open(run.log, "a", encoding="utf-8") as log:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        gpu_note = "" if gpu is None else f" CUDA_VISIBLE_DEVICES={gpu}"
        log.write(f"# {stamp}{gpu_note}: {run.shell_command()}\n")
        log.flush()
        process = CHILDREN.start(
            run.command,
            cwd=run.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        code = CHILDREN.wait(process)
    return code == 0 and run.complete


def run_all(runs, jobs=1, gpus=(), progress=True):
    """Runs the incomplete runs, ``jobs`` at a time, with a progress bar.

    When ``jobs > 1`` the first pending run goes alone: it prepares the
    shared manifest and folds, which concurrent runs would write at the same
    time. Each job slot owns one GPU of ``gpus`` (round-robin over slots).

    Arguments
    ---------
    runs : list of CVRun
        The sweep.
    jobs : int
        Runs at a time.
    gpus : sequence of str
        GPU ids to hand out (empty: the runs' environment is left as is).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of CVRun
        The runs that failed.
    """
    pending = [run for run in runs if not run.complete]
    slots = queue.Queue()
    for slot in range(max(1, jobs)):
        slots.put(gpus[slot % len(gpus)] if gpus else None)

    def work(run):
        """Runs one run on a free GPU slot (or the CPU)."""
        gpu = slots.get()
        try:
            return execute(run, gpu)
        finally:
            slots.put(gpu)

    failed = []
    bar = tqdm(
        total=len(pending), unit="run", desc="cv runs", disable=not progress
    )

    def finish(run, ok):
        """Counts a finished run; reports a failed one."""
        bar.update()
        if not ok:
            failed.append(run)
            tqdm.write(f"FAILED {run.name}: see {run.log}", file=sys.stderr)

    first, rest = (pending[:1], pending[1:]) if jobs > 1 else ([], pending)
    with bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            for run in first:
                finish(run, work(run))
            futures = {pool.submit(work, run): run for run in rest}
            for future in as_completed(futures):
                finish(futures[future], future.result())
        except BaseException:
            # interrupted (SIGINT, SIGTERM) or broken: no run trains on
            # without the runner, to be started again beside a new one
            pool.shutdown(wait=False, cancel_futures=True)
            CHILDREN.end_all()
            raise
    return failed


@contextlib.contextmanager
def sweep_lock(output, print_commands=False):
    """Holds a sweep folder for one runner; SIGTERM ends it in order.

    While held, a second runner on the same folder is refused (naming
    this one), and SIGTERM raises ``SystemExit`` in the runner so that
    its runs are ended with it (:meth:`Children.end_all`). Only printing
    the commands takes no lock.

    Arguments
    ---------
    output : str or os.PathLike
        The sweep folder.
    print_commands : bool
        Only printing: nothing is locked.

    Yields
    ------
    None
    """
    if print_commands:
        yield
        return
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    with FolderLock(output, SWEEP_LOCK, "sweep"):
        if main_thread:
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            yield
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def write_plan(output, runs):
    """Records which runs make the sweep (``sweep.json``), so that its
    aggregate names the missing ones.

    Arguments
    ---------
    output : str or os.PathLike
        The sweep folder.
    runs : list of CVRun
        The sweep.
    """
    if runs:
        write_json(
            Path(output) / SWEEP_PLAN,
            {"runs": [run.name for run in runs]},
        )


def summarize_sweep(output, protocol, name=None):
    """Writes cv_results.json/csv and report.md for a sweep folder.

    Arguments
    ---------
    output : str or os.PathLike
        The sweep folder.
    protocol : str
        The protocol to summarise.
    name : str, optional
        The configuration's name in the report (default: the folder name).

    Returns
    -------
    dict or None
        The aggregated results (None when no run is complete).
    """
    results = aggregate(output, protocol)
    if results is not None:
        write_report(output, results, name)
    return results


def report_failures(failed):
    """Prints the logs of the failed runs; returns the exit code.

    Arguments
    ---------
    failed : list of CVRun
        The runs that failed.

    Returns
    -------
    int
        1 if any run failed, else 0.
    """
    if not failed:
        return 0
    logs = "\n".join(f"  {run.log}" for run in failed)
    print(f"{len(failed)} run(s) failed, see:\n{logs}", file=sys.stderr)
    return 1


def check_settings(runs):
    """Refuses a sweep whose existing runs were made with other settings.

    A run folder records its settings (``run_config.json``); a finished run
    made with other settings must not be counted as done, nor aggregated
    beside the new ones. With ``--start_over=True`` among the overrides,
    such runs are reset instead (their own ``train.py`` discards the rest).

    Arguments
    ---------
    runs : list of CVRun
        The sweep.

    Raises
    ------
    ValueError
        Naming how many runs differ, one of them and its differences.
    """
    stale = []
    for run in runs:
        try:
            differences = stale_settings(
                run.folder,
                # as train.py records them: with what a prepared
                # data_folder implies (corpus_overrides)
                lambda run=run: run_settings(
                    run.hparams_file,
                    corpus_overrides(run.hparams_file, run.overrides),
                ),
            )
        except (ValueError, KeyError, OSError) as error:
            raise ValueError(
                f"{run.folder}: cannot compare its settings with this "
                f"sweep's ({error})"
            ) from None
        if differences:
            stale.append((run, differences))
    if not stale:
        return
    if "start_over: True" in stale[0][0].overrides:
        for run, _ in stale:
            (run.folder / TEST_RESULTS).unlink(missing_ok=True)
        return
    run, differences = stale[0]
    raise ValueError(
        f"{len(stale)} run(s) of this sweep were made with other settings, "
        f"e.g. {run.folder}: {'; '.join(differences[:6])}; use another "
        "--output, or --start_over=True to train them anew"
    )


def run_sweep_or_print(
    runs, jobs=1, print_commands=False, slurm=None, output=None
):
    """Prints the pending commands, or runs them; returns the failures.

    Arguments
    ---------
    runs : list of CVRun
        The sweep.
    jobs : int
        Runs at a time (here).
    print_commands : bool
        Only print the commands of the incomplete runs.
    slurm : SlurmResources, optional
        Run them as SLURM jobs, with these resources (:func:`run_on_slurm`).
    output : str or os.PathLike, optional
        The sweep folder (with ``slurm``: the record of its jobs goes there).

    Returns
    -------
    list of CVRun or None
        The failed runs, or None when only printing.
    """
    check_settings(runs)
    pending = [run for run in runs if not run.complete]
    if print_commands:
        for run in pending:
            print(run.shell_command())
        return None
    how = f"{jobs} at a time" if slurm is None else "as SLURM jobs"
    print(
        f"{len(runs) - len(pending)} of {len(runs)} runs already complete "
        f"(skipped), {len(pending)} to run, {how}",
        file=sys.stderr,
    )
    if slurm is not None:
        return run_on_slurm(runs, output, slurm)
    return run_all(runs, jobs, visible_gpus() if pending else ())


def shared_data_ready(run):
    """Whether a run finds its corpus prepared (its ``data_folder`` or
    ``prepare_folder`` holds a ``corpus.json``): then concurrent runs
    prepare nothing.

    Arguments
    ---------
    run : CVRun

    Returns
    -------
    bool
    """
    try:
        settings = read_plain_yaml(run.hparams_file, run.overrides)
    except (ValueError, KeyError, OSError):
        return False
    return any(
        isinstance(settings.get(key), str)
        and read_corpus_info(settings[key]) is not None
        for key in ("data_folder", "prepare_folder")
    )


def run_on_slurm(runs, output, resources, progress=True):
    """Runs the incomplete runs as SLURM jobs; returns the failures.

    Each run is one job running its ``train.py`` command in the recipe
    folder, its output appended to ``<run>/stdout.log`` as here; with
    ``resources.gpus > 1`` the command runs under torchrun, one process per
    GPU of the job. The job ids are recorded in the sweep folder
    (``slurm_jobs.json``): a rerun waits for those still queued or running
    and submits the other incomplete runs. When the corpus is not prepared
    yet, the first run goes alone, as with ``--jobs``.

    Arguments
    ---------
    runs : list of CVRun
        The sweep.
    output : str or os.PathLike
        The sweep folder.
    resources : SlurmResources
        What each job asks for.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of CVRun
        The runs that failed.
    """
    output = Path(output).resolve()
    pending = [run for run in runs if not run.complete]
    if not pending:
        return []
    by_name = {r.folder.relative_to(output).as_posix(): r for r in pending}
    commands = [
        Command(
            name,
            run.command
            if resources.gpus <= 1
            else torchrun_argv(run.command, resources.gpus),
            str(run.cwd),
            str(run.log),
        )
        for name, run in by_name.items()
    ]
    failed = run_commands(
        commands,
        output,
        resources,
        succeeded=lambda command, state: by_name[command.name].complete,
        first_alone=not shared_data_ready(pending[0]),
        progress=progress,
        desc="cv runs",
    )
    return [by_name[command.name] for command in failed]


def run_cv(
    hparams_file,
    protocol="speaker",
    seeds=DEFAULT_SEEDS,
    folds=None,
    jobs=1,
    output=None,
    overrides=None,
    print_commands=False,
    launcher="local",
    slurm=None,
):
    """A cross-validation sweep of a recipe: runs, results and report.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe YAML.
    protocol : str
        ``"speaker"`` or ``"session"``.
    seeds : sequence of int
        Seeds per fold.
    folds : sequence of int, optional
        Folds (default: all of the protocol).
    jobs : int
        Runs at a time.
    output : str or os.PathLike, optional
        The sweep folder (default ``results/cv/<experiment>``).
    overrides : dict, optional
        Recipe overrides (strings) for every run.
    print_commands : bool
        Print the commands of the incomplete runs and run nothing.
    launcher : str
        ``"local"`` (subprocesses here) or ``"slurm"`` (SLURM jobs).
    slurm : dict, optional
        With ``launcher="slurm"``: the keyword arguments of
        :meth:`SlurmResources.from_options` (``partition``,
        ``gpus_per_run``, ...).

    Returns
    -------
    int
        0 when every run is complete (or only printing), 1 otherwise.
    """
    overrides = overrides or {}
    output = output or os.path.join(
        "results", "cv", experiment_name(hparams_file, overrides)
    )
    resources = slurm_resources(launcher, slurm)
    runs = plan_runs(hparams_file, protocol, folds, seeds, output, overrides)
    with sweep_lock(output, print_commands):
        failed = run_sweep_or_print(
            runs, jobs, print_commands, resources, output
        )
        if failed is None:
            return 0
        write_plan(output, runs)
        results = summarize_sweep(output, protocol)
    if results is not None:
        print(f"results: {Path(output).resolve() / REPORT}")
    return report_failures(failed)


def slurm_resources(launcher, options=None):
    """The SLURM resources of a launcher and its options (None: local).

    Arguments
    ---------
    launcher : str
        One of :data:`LAUNCHERS`.
    options : dict, optional
        Keyword arguments of :meth:`SlurmResources.from_options` (None
        values are left out).

    Returns
    -------
    SlurmResources or None

    Example
    -------
    >>> slurm_resources("slurm", {"partition": "gpu", "time": None}).partition
    'gpu'
    >>> slurm_resources("local") is None
    True
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}: {launcher!r}")
    if launcher == "local":
        return None
    options = {k: v for k, v in (options or {}).items() if v is not None}
    return SlurmResources.from_options(**options)
