"""MSP-Podcast preparation at scale: time and peak memory.

A synthetic release of ``--utterances`` short files (1-2 s) in the exact
MSP-Podcast layout is generated once (not timed), then prepared by
``prepare_msp_podcast`` in a child process: wall time, peak RSS and the
linear estimate for the real release (~150k files; durations come from
the audio headers, so the time grows with the number of files, not their
length). The child's start-up (Python and the imports, timed apart in a
child that only imports) is a fixed cost: the estimate scales the rest.

    python benchmarks/msp_prepare.py --quick        # 2,000 utterances
    python benchmarks/msp_prepare.py                # 20,000 utterances
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME,
    generate_synthetic_msp_podcast,
)

REAL_RELEASE = 151654  # v1.11 turns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=20000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default=None, help="work folder (kept)")
    args = parser.parse_args(argv)
    if args.quick:
        args.utterances = 2000
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="msp_prepare_"))
    release = work / f"release_{args.utterances}"
    if not (release / RELEASE_DIRNAME / "Labels").is_dir():
        start = time.perf_counter()
        generate_synthetic_msp_podcast(release, args.utterances, seed=0)
        print(f"generated in {time.perf_counter() - start:.0f} s (not timed)")
    out = work / "prepared"
    code = (
        "import sys; from speechbrain_mtmm.data.msp_podcast import "
        "prepare_msp_podcast as p; p(sys.argv[1], sys.argv[2])"
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code.split(";")[1].strip()], check=True, env=env
    )
    startup = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, str(release / RELEASE_DIRNAME), str(out)],
        check=True,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    per_file = max(seconds - startup, 0.0) / args.utterances
    estimate = (startup + per_file * REAL_RELEASE) / 60
    print(f"machine: {common.machine()}")
    print(
        f"prepared {args.utterances} utterances in {seconds:.1f} s "
        f"(start-up {startup:.1f} s, then {1000 * per_file:.2f} ms per "
        f"file), peak RSS {peak_mb:.0f} MB; the real release "
        f"(~{REAL_RELEASE} files): ~{estimate:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
