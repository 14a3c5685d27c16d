"""Places this project's recipes into a checkout of SpeechBrain, as a
contributor sending them upstream would, so that SpeechBrain's own checks
run on them there.

Copied into ``<speechbrain>``: each recipe folder
(``recipes/<Dataset>/multimodal_emotion/``), the rows of
``tests/recipes/<Dataset>.csv`` (appended to SpeechBrain's file of that
name, or written where it has none) and the setup scripts under
``tests/recipes/setup/``. Nothing of SpeechBrain's is overwritten: a
recipe folder or setup script that exists there already stops the copy.
Then, from ``<speechbrain>``::

    pytest tests/consistency
    ruff check recipes/IEMOCAP/multimodal_emotion  # SpeechBrain's config
    python -c 'from tests.utils.recipe_tests import run_recipe_tests; \\
        print(run_recipe_tests(filters_fields=["Task"], \\
        filters=["Emotion_recognition_multimodal"], run_opts="--device=cpu"))'

Usage::

    python tests/place_in_speechbrain.py <speechbrain checkout>

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import argparse
import csv
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CSVS = ROOT / "tests" / "recipes"


def recipe_rows(csv_file):
    """The header and rows of a recipe CSV file.

    Arguments
    ---------
    csv_file : pathlib.Path
        ``tests/recipes/<Dataset>.csv``.

    Returns
    -------
    header : list of str
    rows : list of dict
    """
    with open(csv_file, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        return list(reader.fieldnames), list(reader)


def place(speechbrain):
    """Copies the recipes, their CSV rows and setup scripts into a
    SpeechBrain checkout.

    Arguments
    ---------
    speechbrain : str or path-like
        The checkout's root (holding ``recipes/`` and ``tests/recipes/``).

    Returns
    -------
    list of str
        What was placed, relative to the checkout.

    Raises
    ------
    FileExistsError
        A recipe folder or setup script of that name is already there.
    """
    target = Path(speechbrain)
    if not (target / "tests" / "recipes").is_dir():
        raise FileNotFoundError(f"{target}: not a SpeechBrain checkout")
    placed = []
    for csv_file in sorted(RECIPE_CSVS.glob("*.csv")):
        header, rows = recipe_rows(csv_file)
        for folder in sorted({Path(r["Script_file"]).parent for r in rows}):
            if (target / folder).exists():
                raise FileExistsError(f"{target / folder}: exists already")
            shutil.copytree(
                ROOT / folder,
                target / folder,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            placed.append(str(folder))
        theirs = target / "tests" / "recipes" / csv_file.name
        if theirs.exists():
            their_header, their_rows = recipe_rows(theirs)
            if their_header != header:
                raise ValueError(f"{theirs}: other columns than {csv_file}")
            known = {r["Hparam_file"] for r in their_rows}
            rows = [r for r in rows if r["Hparam_file"] not in known]
            with open(theirs, "a", newline="", encoding="utf-8") as fout:
                csv.DictWriter(fout, header, lineterminator="\n").writerows(
                    rows
                )
        else:
            shutil.copy2(csv_file, theirs)
        placed.append(f"tests/recipes/{csv_file.name} (+{len(rows)} rows)")
    for setup in sorted((RECIPE_CSVS / "setup").iterdir()):
        destination = target / "tests" / "recipes" / "setup" / setup.name
        if destination.exists():
            raise FileExistsError(f"{destination}: exists already")
        shutil.copytree(setup, destination, symlinks=True)
        placed.append(f"tests/recipes/setup/{setup.name}")
    return placed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("speechbrain", help="a checkout of SpeechBrain")
    for line in place(parser.parse_args().speechbrain):
        print(line)
