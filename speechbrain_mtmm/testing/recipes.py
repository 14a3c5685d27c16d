"""The recipe commands that tests, benchmarks and the demo share.

A recipe lives in ``recipes/<Dataset>/<task>/`` of a checkout (as in
SpeechBrain), not in the installed package: :func:`find_recipe` finds one,
:func:`recipe_command` writes the command line of a toy-width run
(:func:`tiny_overrides`, offline, on the CPU), :func:`run_recipe_command`
runs it, and :func:`load_recipe` imports its ``train.py`` as a module.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import importlib.util
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import yaml

from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_deberta_v2,
    build_tiny_hubert,
)
from speechbrain_mtmm.training.hparams import format_override

RECIPE_YAML = Path("hparams") / "iemocap.yaml"
#: The IEMOCAP recipe folder, relative to a checkout
IEMOCAP_RECIPE = "recipes/IEMOCAP/multimodal_emotion"
#: The demo's corpora: default recipe folder (in a checkout) and its YAML

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
    speechbrain_mtmm.testing.recipes.RecipeNotFoundError: ...
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


def run_recipe_command(recipe, command, check=True):
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
