"""The demo that runs anywhere: ``mtmm demo``.

With no network and no GPU, :func:`run_demo`

1. writes a synthetic corpus in its release layout (IEMOCAP by default;
   ``--corpus msp-podcast`` or ``csv``),
2. prepares it (manifest and folds),
3. builds tiny randomly initialised HuggingFace encoders (a HuBERT and a
   DeBERTa-v2 with a sentencepiece tokenizer trained on the corpus), or uses
   the light from-scratch pair with ``--light``,
4. trains and tests one fold through the real recipe (``train.py`` of the
   recipe folder given; by default the corpus' recipe in this checkout),
5. prints the test table.

The recipe is not part of the installed package (recipes live in
``recipes/``, as in SpeechBrain): ``mtmm demo --recipe <checkout>/recipes/
IEMOCAP/multimodal_emotion`` runs it from anywhere.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import os
import subprocess
import time
from pathlib import Path

from speechbrain_mtmm.data.corpora import CORPORA
from speechbrain_mtmm.data.corpus import corpus_manifest, read_corpus_info
from speechbrain_mtmm.run_folder import DIMENSIONS, read_test_results
from speechbrain_mtmm.testing.recipes import (
    build_tiny_encoders,
    find_recipe,
    recipe_command,
)


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
    dims = [d for d in DIMENSIONS if f"CCC_{d}" in results]
    width = max(4, *(len(label) for label in results["labels"]))
    column = max(6, width + 1)
    lines = [
        f"test utterances: {results['n']}",
        "WA     UA     macro-F1  "
        + "  ".join(f"CCC-{d[0].upper()}" for d in dims),
        f"{100 * results['WA']:<6.2f} {100 * results['UA']:<6.2f} "
        f"{100 * results['macro_F1']:<9.2f} "
        + " ".join(f"{results[f'CCC_{d}']:<6.3f}" for d in dims).rstrip(),
        "confusion (rows true, columns predicted):",
        " " * width
        + "".join(f"{label:>{column}}" for label in results["labels"]),
    ]
    for label, row in zip(results["labels"], results["confusion"]):
        lines.append(
            f"{label:<{width}}" + "".join(f"{n:>{column}}" for n in row)
        )
    return "\n".join(lines)


def _demo_corpus(record, out, size):
    """Writes and prepares the demo's corpus; returns the prepared folder
    and the transcripts (for the tiny tokenizer)."""
    source = out / "corpus" / record.synthetic_source
    if not source.exists():
        print(f"[1/4] writing a synthetic {record.name} corpus to {source}")
        record.synthesize(out / "corpus", 0, record.size(size))
    prepared = out / "prepared"
    print(f"[2/4] preparing it in {prepared}")
    record.prepare(str(source), prepared, **record.demo_options)
    manifest = corpus_manifest(prepared, read_corpus_info(prepared))
    with open(manifest, encoding="utf-8") as fin:
        texts = [e["text"] for e in json.load(fin).values() if e["text"]]
    return prepared, texts


def run_demo(
    out="demo_output",
    recipe=None,
    light=False,
    size="default",
    fold=1,
    corpus="iemocap",
):
    """Runs the demo end to end (see the module docstring).

    Arguments
    ---------
    out : str or path-like
        The work folder (corpus, prepared data, models, run; in
        ``<out>/<corpus>/`` for the other corpora than IEMOCAP).
    recipe : str or path-like, optional
        The recipe folder (:func:`find_recipe`; default: the corpus' recipe
        in this checkout).
    light : bool
        Use the from-scratch fbank/hashing encoders.
    size : str
        Synthetic corpus size (tiny | small | default).
    fold : int
        The fold trained and tested.
    corpus : str
        A name of :data:`~speechbrain_mtmm.data.corpora.CORPORA`.

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    record = CORPORA[corpus]
    yaml_file = Path(record.hparams)
    recipe = find_recipe(recipe or record.recipe, yaml_file)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    start = time.time()
    out = Path(out).resolve()
    if corpus != "iemocap":  # each corpus in a folder of its own
        out = out / corpus
    # the recipe trains on the prepared folder as it is (its corpus.json
    # brings the labels, rating scale and protocol)
    prepared, texts = _demo_corpus(record, out, size)
    if light:
        audio_source, text_source = "fbank", "hashing"
        print("[3/4] using the light from-scratch encoders")
    else:
        print(f"[3/4] building tiny local encoders in {out / 'models'}")
        audio_source, text_source = build_tiny_encoders(out / "models", texts)
    run = out / "run"
    print(f"[4/4] training fold {fold} with {recipe / 'train.py'}")
    command = recipe_command(
        recipe,
        prepared,
        prepared,
        run,
        audio_source,
        text_source,
        {"fold": fold},
        yaml_file,
    )
    subprocess.run(command, cwd=recipe, check=True)
    print(format_results(read_test_results(run)))
    print(f"outputs in {run} ({time.time() - start:.0f} s)")
    return run
