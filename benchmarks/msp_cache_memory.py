"""MSP-Podcast recipe from the feature cache: does memory stay bounded as
the corpus grows?

For each size, a synthetic release in the MSP-Podcast layout is generated
(not timed) and the MSP-Podcast recipe runs one epoch with frozen light
encoders and ``feature_cache: True``: the features of every utterance are
computed once into per-utterance files, then training, validation and the
tests read them back one batch at a time. Printed per size: wall time and
the peak RSS of the recipe process; the last line is the ratio of the
largest corpus' peak to the smallest's (near 1 when memory does not grow
with the corpus; the manifests themselves grow by about a kilobyte per
utterance).

    python benchmarks/msp_cache_memory.py --quick   # 300 and 1,200 files
    python benchmarks/msp_cache_memory.py           # 1,000 and 4,000 files
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME,
    generate_synthetic_msp_podcast,
)
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV
from speechbrain_mtmm.training.hparams import format_override

RECIPE = (
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "MSP-Podcast"
    / "multimodal_emotion"
)
# the child reports the peak RSS of the recipe it ran (kB on Linux)
MEASURE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
TINY = {
    "audio_source": "fbank",
    "text_source": "hashing",
    "freeze_policy": "frozen",
    "feature_cache": True,
    "number_of_epochs": 1,
    "d_model": 64,
    "n_heads": 4,
    "refinement_ffn": 128,
    "bridge_tokens": 8,
    "batch_size": 8,
    "num_workers": 0,
    "device": "cpu",
}


def run_size(work, utterances):
    """One epoch from the cache on a release of ``utterances`` files."""
    release = work / f"release_{utterances}"
    if not (release / RELEASE_DIRNAME / "Labels").is_dir():
        generate_synthetic_msp_podcast(release, utterances, seed=0)
    overrides = {
        **TINY,
        "data_folder": release / RELEASE_DIRNAME,
        "prepare_folder": work / f"prepared_{utterances}",
        "output_folder": work / f"run_{utterances}",
    }
    command = [
        sys.executable,
        "train.py",
        "hparams/msp_podcast.yaml",
        *(f"--{k}={format_override(v)}" for k, v in overrides.items()),
    ]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        cwd=RECIPE,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    seconds = time.perf_counter() - start
    return seconds, int(result.stdout.strip().splitlines()[-1]) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default=None, help="work folder (kept)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [300, 1200]
    if args.threads:  # the training children's torch threads
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="msp_cache_"))
    peaks = []
    for size in args.sizes:
        seconds, peak = run_size(work, size)
        peaks.append(peak)
        print(
            f"{size} utterances: one cached epoch + tests in {seconds:.1f} s, "
            f"peak RSS {peak:.0f} MB"
        )
    growth = args.sizes[-1] / args.sizes[0]
    print(
        f"peak RSS ratio {args.sizes[-1]}/{args.sizes[0]} utterances: "
        f"{peaks[-1] / peaks[0]:.2f} (corpus x{growth:g})"
    )


if __name__ == "__main__":
    main()
