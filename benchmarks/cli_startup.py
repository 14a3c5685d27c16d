"""How long ``mtmm`` takes to answer what needs no model: its help, each
verb's help and two usage errors, each run as a new process as a user
would (``python -m speechbrain_mtmm``, the same as ``mtmm``); the median
of N runs, then the slowest imports of ``mtmm --help`` (``python -X
importtime``). Targets (GitHub issue 27): <= 0.5 s for ``mtmm --help``,
<= 1 s for a verb's, on two idle cores.

    python benchmarks/cli_startup.py [--repeats 5] [--checkout DIR]

``--checkout`` measures another checkout of the package (e.g. one from
before the CLI was made instant). Imports nothing of the package itself,
so that its own start-up is not what it measures.
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The usage errors timed: (name, arguments)
USAGE_ERRORS = (
    (
        "predict, missing model",
        ["predict", "--model", "./no_model", "--text", "hi"],
    ),
    ("cv, missing recipe", ["cv", "no_recipe.yaml"]),
)
#: Lists the verbs of the checkout's parser
VERBS = (
    "import argparse; from speechbrain_mtmm.cli import build_parser; "
    "print(' '.join(next(a for a in build_parser()._actions if isinstance("
    "a, argparse._SubParsersAction)).choices))"
)


def environment(checkout, threads):
    """The children's environment: the checkout first on the path."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(checkout), env.get("PYTHONPATH", "")]
    )
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def timed(argv, env, cwd):
    """Seconds of one ``python -m speechbrain_mtmm <argv>`` process
    (``argv`` None: of ``python -c pass``, the interpreter alone)."""
    command = ["-c", "pass"] if argv is None else ["-m", "speechbrain_mtmm"]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *command, *(argv or [])],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def slowest_imports(env, cwd, top):
    """The ``top`` imports of ``mtmm --help`` by cumulative microseconds,
    and the total seconds (``python -X importtime``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "speechbrain_mtmm"]
        + ["--help"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    rows = []
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    for line in result.stderr.splitlines():
        found = pattern.match(line)
        if found:
            rows.append((int(found[2]), len(found[3]) // 2, found[4]))
    total = sum(cumulative for cumulative, depth, _ in rows if depth == 0)
    return sorted(rows, reverse=True)[:top], total / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS of the processes (start-up uses one core)",
    )
    parser.add_argument(
        "--checkout",
        default=str(ROOT),
        help="the repository whose speechbrain_mtmm is timed (default: "
        "this one)",
    )
    parser.add_argument(
        "--work", help="folder the commands run in (default: a new one)"
    )
    parser.add_argument("--top", type=int, default=15, help="imports shown")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    env = environment(Path(args.checkout).resolve(), args.threads)
    cwd = args.work or tempfile.mkdtemp(prefix="cli_startup_")
    os.makedirs(cwd, exist_ok=True)
    verbs = subprocess.run(
        [sys.executable, "-c", VERBS],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    cases = [("python -c pass (the floor)", None), ("mtmm --help", ["--help"])]
    cases += [(f"mtmm {verb} --help", [verb, "--help"]) for verb in verbs]
    cases += [(f"usage error: {name}", argv) for name, argv in USAGE_ERRORS]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{datetime.date.today()}  {args.checkout}  load average {load}  "
        f"{os.cpu_count()} cores  median of {repeats}"
    )
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, case in cases:
        times = [timed(case, env, cwd) for _ in range(repeats)]
        print(
            f"{name:<40} {statistics.median(times):9.2f} "
            f"{min(times):7.2f} {max(times):7.2f}"
        )
    rows, total = slowest_imports(env, cwd, args.top)
    print(f"\nslowest imports of mtmm --help (all imports: {total:.2f} s)")
    print(f"{'cumulative ms':>14}  module")
    for cumulative, depth, name in rows:
        print(f"{cumulative / 1000:14.1f}  {'  ' * depth}{name}")


if __name__ == "__main__":
    main()
