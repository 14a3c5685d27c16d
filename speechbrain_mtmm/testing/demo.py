"""A demo that runs anywhere, and the recipe commands tests share.

With no network and no GPU, :func:`run_demo` (``mtmm demo``)

1. writes a synthetic corpus in the exact IEMOCAP_full_release layout (or,
   with ``--corpus``, in the MSP-Podcast release layout, or a CSV corpus),
2. prepares it (manifest + speaker-independent folds; MSP-Podcast's
   official split; the CSV corpus' speaker folds),
3. builds tiny randomly initialised HuggingFace encoders (a HuBERT and a
   DeBERTa-v2 with a sentencepiece tokenizer trained on the corpus), or uses
   the light from-scratch pair with ``--light``,
4. trains and tests one fold through the real recipe (``train.py`` of the
   recipe folder given; by default ``recipes/IEMOCAP/multimodal_emotion``
   of a checkout, or ``recipes/MSP-Podcast/multimodal_emotion``),
5. prints the test table.

The recipe is not part of the installed package (recipes live in
``recipes/``, as in SpeechBrain): ``mtmm demo --recipe <checkout>/recipes/
IEMOCAP/multimodal_emotion`` runs it from anywhere.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import yaml

from speechbrain_mtmm.data.csv_corpus import MANIFEST_NAME, prepare_csv
from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.data.msp_podcast import (
    MANIFEST_NAME as MSP_MANIFEST,
)
from speechbrain_mtmm.data.msp_podcast import (
    prepare_msp_podcast,
)
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    generate_synthetic_iemocap,
    size_to_utterances,
)
from speechbrain_mtmm.data.synthetic_csv import (
    CORPUS_DIRNAME,
    generate_synthetic_csv_corpus,
)
from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME as MSP_RELEASE,
)
from speechbrain_mtmm.data.synthetic_msp import (
    generate_synthetic_msp_podcast,
)
from speechbrain_mtmm.run_folder import DIMENSIONS, read_test_results
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_deberta_v2,
    build_tiny_hubert,
)
from speechbrain_mtmm.training.recipe import format_override

RECIPE_YAML = Path("hparams") / "iemocap.yaml"
#: The IEMOCAP recipe folder, relative to a checkout
IEMOCAP_RECIPE = "recipes/IEMOCAP/multimodal_emotion"
#: The demo's corpora: default recipe folder (in a checkout) and its YAML
DEMO_CORPORA = {
    "iemocap": (IEMOCAP_RECIPE, RECIPE_YAML),
    "csv": (IEMOCAP_RECIPE, RECIPE_YAML),
    "msp-podcast": (
        "recipes/MSP-Podcast/multimodal_emotion",
        Path("hparams") / "msp_podcast.yaml",
    ),
}
#: The recipes at toy width on the CPU (package data)
TINY_OVERRIDES = (
    resources.files("speechbrain_mtmm") / "presets" / ("tiny_overrides.yaml")
)
#: Offline, one thread per process (tests and the demo run several at once)
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
}


class RecipeNotFoundError(FileNotFoundError):
    """No recipe at the given folder; the message says what to pass."""


def find_recipe(folder=None, yaml_file=RECIPE_YAML):
    """A recipe folder (holding ``train.py`` and its YAML).

    Arguments
    ---------
    folder : str or path-like, optional
        The recipe folder; default :data:`IEMOCAP_RECIPE` under the current
        folder (a checkout of the repository).
    yaml_file : pathlib.Path
        The recipe YAML it must hold (relative to it).

    Returns
    -------
    pathlib.Path
        The absolute folder.

    Raises
    ------
    RecipeNotFoundError
        Naming the folder and what to give instead.

    Example
    -------
    >>> find_recipe(getfixture("tmp_path"))
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.testing.demo.RecipeNotFoundError: ...
    """
    path = Path(folder if folder is not None else IEMOCAP_RECIPE).resolve()
    for needed in ("train.py", yaml_file):
        if not (path / needed).is_file():
            example = "MSP-Podcast" if "msp" in str(yaml_file) else "IEMOCAP"
            raise RecipeNotFoundError(
                f"{path}: no {needed} here; give the recipe folder of a "
                "speechbrain-mtmm checkout with --recipe (e.g. "
                f"--recipe ~/speechbrain-mtmm/recipes/{example}/"
                "multimodal_emotion)"
            )
    return path


def load_recipe(folder):
    """A recipe's ``train.py`` as a module (its ``Brain``, ``dataio_prepare``
    and constants), for tests and benchmarks; its main does not run.

    Arguments
    ---------
    folder : str or path-like
        The recipe folder (its own folder goes on ``sys.path``, as when the
        script runs, for the ``<dataset>_prepare`` module beside it).

    Returns
    -------
    module

    Example
    -------
    >>> recipe = load_recipe(find_recipe())  # doctest: +SKIP
    >>> recipe.EmotionBrain.__mro__[1].__name__  # doctest: +SKIP
    'Brain'
    """
    folder = Path(folder).resolve()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    name = "recipe_" + "_".join(folder.parts[-2:]).replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, folder / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_overrides():
    """The overrides of a toy-width CPU run (``presets/tiny_overrides.yaml``)
    as a dict.

    Returns
    -------
    dict

    Example
    -------
    >>> tiny_overrides()["d_model"]
    64
    """
    with TINY_OVERRIDES.open(encoding="utf-8") as fin:
        return yaml.safe_load(fin)


def recipe_command(
    recipe,
    data_folder,
    prepare_folder,
    output_folder,
    audio_source,
    text_source,
    extra=None,
    yaml_file=RECIPE_YAML,
):
    """The train.py command line of a tiny run (demo, tests, benchmarks).

    Arguments
    ---------
    recipe : pathlib.Path
        The recipe folder (the command runs there).
    data_folder : str
        The corpus (an IEMOCAP_full_release or MSP-Podcast release folder,
        or a prepared folder).
    prepare_folder : str
        Where the manifest and folds go.
    output_folder : str
        The run's output folder.
    audio_source : str
        Audio encoder source (a local folder, or "fbank").
    text_source : str
        Text encoder source (a local folder, or "hashing").
    extra : dict, optional
        More overrides, on top of :func:`tiny_overrides`.
    yaml_file : pathlib.Path
        The recipe YAML, relative to the recipe folder.

    Returns
    -------
    list of str
        The command, to run with ``cwd=recipe``.
    """
    overrides = tiny_overrides()
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
    return [sys.executable, "train.py", str(yaml_file), *args]


def run_recipe(recipe, command, check=True):
    """Runs a recipe command offline; returns its completed process.

    Arguments
    ---------
    recipe : pathlib.Path
        The recipe folder.
    command : list of str
        From :func:`recipe_command` (more arguments may follow).
    check : bool
        Raise ``RuntimeError`` with the end of the output on failure.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` and ``stderr`` as text.
    """
    env = dict(os.environ, **OFFLINE_ENV)
    result = subprocess.run(
        command, cwd=recipe, capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"recipe failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    return result


def build_tiny_encoders(folder, texts):
    """Tiny random HuBERT + DeBERTa-v2 (tokenizer trained on ``texts``).

    Arguments
    ---------
    folder : pathlib.Path
        Where the two model folders are written (reused when present).
    texts : list of str
        Transcripts to train the sentencepiece tokenizer on.

    Returns
    -------
    tuple of str
        The audio and text model folders.
    """
    audio = Path(folder) / "tiny_hubert"
    text = Path(folder) / "tiny_deberta_v2"
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


def _demo_corpus(corpus, out, size):
    """Writes and prepares the demo's corpus; returns the data folder, the
    prepared folder and the transcripts (for the tiny tokenizer)."""
    prepared = out / "prepared"
    if corpus == "csv":
        folder = out / "corpus" / CORPUS_DIRNAME
        if not folder.exists():
            print(f"[1/4] writing a synthetic CSV corpus to {folder}")
            generate_synthetic_csv_corpus(
                out / "corpus", per_speaker=size_to_utterances(size)
            )
        print(f"[2/4] preparing it (3 speaker folds) in {prepared}")
        prepare_csv(folder / "corpus.csv", prepared, folds=3, scale=(1, 5))
        # the prepared folder is the data folder: the recipe takes its
        # labels, scale and protocol from it
        data_folder, manifest = prepared, prepared / MANIFEST_NAME
    elif corpus == "msp-podcast":
        data_folder = out / "corpus" / MSP_RELEASE
        if not data_folder.exists():
            print(
                "[1/4] writing a synthetic MSP-Podcast release to "
                f"{data_folder}"
            )
            generate_synthetic_msp_podcast(
                out / "corpus", 25 * size_to_utterances(size)
            )
        print(f"[2/4] preparing its official split in {prepared}")
        prepare_msp_podcast(data_folder, prepared)
        manifest = prepared / MSP_MANIFEST
    else:
        data_folder = out / "corpus" / RELEASE_DIRNAME
        if not data_folder.exists():
            print(f"[1/4] writing a synthetic IEMOCAP corpus to {data_folder}")
            generate_synthetic_iemocap(
                out / "corpus", utterances_per_dialog=size_to_utterances(size)
            )
        print(f"[2/4] preparing manifest and folds in {prepared}")
        manifest = prepare_iemocap(data_folder, prepared)
    with open(manifest, encoding="utf-8") as fin:
        texts = [e["text"] for e in json.load(fin).values() if e["text"]]
    return data_folder, prepared, texts


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
        ``iemocap``, ``msp-podcast`` or ``csv`` (:data:`DEMO_CORPORA`).

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    default_recipe, yaml_file = DEMO_CORPORA[corpus]
    recipe = find_recipe(recipe or default_recipe, yaml_file)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    start = time.time()
    out = Path(out).resolve()
    if corpus != "iemocap":  # each corpus in a folder of its own
        out = out / corpus
    data_folder, prepared, texts = _demo_corpus(corpus, out, size)
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
        data_folder,
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
