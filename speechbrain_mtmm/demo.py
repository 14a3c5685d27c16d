"""A demo that runs anywhere: synthetic IEMOCAP + tiny local models + recipe.

With no network and no GPU it

1. writes a synthetic corpus in the exact IEMOCAP_full_release layout,
2. prepares it (manifest + speaker-independent folds),
3. builds tiny randomly initialised HuggingFace encoders (a HuBERT and a
   DeBERTa-v2 with a sentencepiece tokenizer trained on the corpus), or uses
   the light from-scratch pair with ``--light``,
4. trains and tests one fold through the real ``recipes/IEMOCAP/train.py``,
5. prints the test table.

Run from a checkout of the repository::

    python -m speechbrain_mtmm.demo [--out demo_output] [--light]

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from speechbrain_mtmm.cv import format_override

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "IEMOCAP"
TINY_OVERRIDES = RECIPE / "hparams" / "tiny_overrides.yaml"


def recipe_command(
    data_folder,
    prepare_folder,
    output_folder,
    audio_source,
    text_source,
    extra=None,
):
    """The train.py command line of a tiny run (used by demo and tests).

    Arguments
    ---------
    data_folder : str
        The IEMOCAP_full_release folder (real or synthetic).
    prepare_folder : str
        Where the manifest and folds go.
    output_folder : str
        The run's output folder.
    audio_source : str
        Audio encoder source (a local folder, or "fbank").
    text_source : str
        Text encoder source (a local folder, or "hashing").
    extra : dict, optional
        More overrides, on top of ``hparams/tiny_overrides.yaml``.

    Returns
    -------
    list of str
        The command, to run with ``cwd=RECIPE``.

    Example
    -------
    >>> cmd = recipe_command("d", "p", "o", "fbank", "hashing", {"fold": 2})
    >>> cmd[1:3], "--fold=2" in cmd
    (['train.py', 'hparams/iemocap.yaml'], True)
    """
    with open(TINY_OVERRIDES, encoding="utf-8") as fin:
        overrides = yaml.safe_load(fin)
    overrides.update(
        data_folder=str(data_folder),
        prepare_folder=str(prepare_folder),
        output_folder=str(output_folder),
        audio_source=str(audio_source),
        text_source=str(text_source),
        device="cpu",
    )
    overrides.update(extra or {})
    args = [f"--{key}={format_override(v)}" for key, v in overrides.items()]
    return [sys.executable, "train.py", "hparams/iemocap.yaml", *args]


def build_tiny_encoders(folder, texts):
    """Tiny random HuBERT + DeBERTa-v2 (tokenizer trained on ``texts``).

    Arguments
    ---------
    folder : pathlib.Path
        Where the two model folders are written.
    texts : list of str
        Transcripts to train the sentencepiece tokenizer on.

    Returns
    -------
    tuple of str
        The audio and text model folders.
    """
    from speechbrain_mtmm.tiny_models import (
        build_tiny_deberta_v2,
        build_tiny_hubert,
    )

    audio = folder / "tiny_hubert"
    text = folder / "tiny_deberta_v2"
    if not (audio / "config.json").exists():
        build_tiny_hubert(audio)
    if not (text / "config.json").exists():
        build_tiny_deberta_v2(text, texts)
    return str(audio), str(text)


def format_results(results):
    """The test table printed at the end of a run.

    Arguments
    ---------
    results : dict
        Content of ``test_results.json``.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_results({"WA": 0.5, "UA": 0.25, "macro_F1": 0.2,
    ...     "CCC_valence": 0.1, "CCC_arousal": 0.3, "n": 4,
    ...     "labels": ["a", "b"], "confusion": [[1, 1], [1, 1]]}))
    test utterances: 4
    WA     UA     macro-F1  CCC-V  CCC-A
    50.00  25.00  20.00     0.100  0.300
    confusion (rows true, columns predicted):
             a     b
    a        1     1
    b        1     1
    """
    lines = [
        f"test utterances: {results['n']}",
        "WA     UA     macro-F1  CCC-V  CCC-A",
        f"{100 * results['WA']:<6.2f} {100 * results['UA']:<6.2f} "
        f"{100 * results['macro_F1']:<9.2f} {results['CCC_valence']:<6.3f} "
        f"{results['CCC_arousal']:.3f}",
        "confusion (rows true, columns predicted):",
        "    " + "".join(f"{label:>6}" for label in results["labels"]),
    ]
    for label, row in zip(results["labels"], results["confusion"]):
        lines.append(f"{label:<4}" + "".join(f"{n:>6}" for n in row))
    return "\n".join(lines)


def main(argv=None):
    """Runs the demo end to end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", help="work folder")
    parser.add_argument(
        "--light",
        action="store_true",
        help="use the from-scratch fbank/hashing encoders",
    )
    parser.add_argument(
        "--size",
        default="default",
        help="synthetic corpus size (tiny|small|default)",
    )
    parser.add_argument("--fold", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from speechbrain_mtmm.data.iemocap import prepare_iemocap
    from speechbrain_mtmm.data.synthetic import (
        generate_synthetic_iemocap,
        size_to_utterances,
    )

    start = time.time()
    out = Path(args.out).resolve()
    corpus = out / "corpus"
    release = corpus / "IEMOCAP_full_release"
    if not release.exists():
        print(f"[1/4] writing a synthetic IEMOCAP corpus to {release}")
        generate_synthetic_iemocap(
            corpus, utterances_per_dialog=size_to_utterances(args.size)
        )
    prepared = out / "prepared"
    print(f"[2/4] preparing manifest and folds in {prepared}")
    manifest = prepare_iemocap(release, prepared)
    with open(manifest, encoding="utf-8") as fin:
        texts = [entry["text"] for entry in json.load(fin).values()]
    if args.light:
        audio_source, text_source = "fbank", "hashing"
        print("[3/4] using the light from-scratch encoders")
    else:
        print(f"[3/4] building tiny local encoders in {out / 'models'}")
        audio_source, text_source = build_tiny_encoders(out / "models", texts)
    run = out / "run"
    print(f"[4/4] training fold {args.fold} with recipes/IEMOCAP/train.py")
    command = recipe_command(
        release,
        prepared,
        run,
        audio_source,
        text_source,
        {"fold": args.fold},
    )
    subprocess.run(command, cwd=RECIPE, check=True)
    with open(run / "test_results.json", encoding="utf-8") as fin:
        results = json.load(fin)
    print(format_results(results))
    print(f"outputs in {run} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
