"""SpeechBrain's recipe rules hold for this project's recipes.

``tests/recipes/<Dataset>.csv`` lists every recipe YAML with SpeechBrain's
columns. As SpeechBrain's ``tests/consistency`` and recipe runner would
upstream (their rules restated in ``speechbrain_rules.py``): the listed
files exist, every recipe YAML is listed with debug flags, every
top-level key of a YAML is read by its own ``train.py`` (no library file
counted), every module, class and function has a docstring, the YAMLs
load, and each row's setup script and debug flags run the recipe and pass
the row's checks; the recipes pass SpeechBrain's ruff configuration.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hyperpyyaml import load_hyperpyyaml
from place_in_speechbrain import place
from speechbrain.utils.run_opts import RunOptions
from speechbrain_rules import (
    files_present,
    hparam_files,
    missing_docstrings,
    performance_met,
    recipe_command,
    recipe_rows,
    setup_script,
    unused_variables,
)

from speechbrain_mtmm.testing.recipes import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CSVS = sorted((ROOT / "tests" / "recipes").glob("*.csv"))
FILE_FIELDS = ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file")


def rows():
    """Every row of every recipe CSV, named as SpeechBrain's runner names
    them (``<Dataset>_row_<line>``)."""
    for path in RECIPE_CSVS:
        for number, row in enumerate(recipe_rows(path), start=2):
            yield pytest.param(row, id=f"{path.stem}_row_{number:02d}")


def test_the_recipe_folder_holds_only_recipe_csvs():
    # SpeechBrain's tests read every file there but README.md and setup
    # as a recipe CSV
    names = {p.name for p in (ROOT / "tests" / "recipes").iterdir()}
    assert names - {"setup", "README.md"} == {p.name for p in RECIPE_CSVS}


@pytest.mark.parametrize("row", rows())
def test_the_listed_recipe_files_exist(row):
    for field in FILE_FIELDS:
        assert (ROOT / row[field].strip()).is_file(), f"{field}: {row[field]}"


def test_every_recipe_yaml_is_listed_with_debug_flags():
    for path in RECIPE_CSVS:
        listed = {
            r["Hparam_file"]: r["test_debug_flags"] for r in recipe_rows(path)
        }
        for name in hparam_files(ROOT, path.stem):
            assert listed.get(name, "").strip(), f"{name}: not in {path.name}"


def test_yaml_fragments_under_models_need_no_row():
    presets = ROOT / "recipes" / "IEMOCAP" / "multimodal_emotion" / "hparams"
    assert (presets / "models" / "wavlm-large.yaml").is_file()
    listed = hparam_files(ROOT, "IEMOCAP")
    assert listed and not any("/models/" in name for name in listed)


@pytest.mark.parametrize("row", rows())
def test_the_readme_holds_the_listed_links(row):
    readme = (ROOT / row["Readme_file"].strip()).read_text(encoding="utf-8")
    for field in ("Result_url", "HF_repo"):
        for link in filter(None, row[field].strip().split(" ")):
            assert link in readme, f"{link} not in {row['Readme_file']}"


@pytest.mark.parametrize("row", rows())
def test_every_top_level_key_is_read_by_its_own_script(row):
    unused, guessed = unused_variables(
        ROOT / row["Hparam_file"], ROOT / row["Script_file"]
    )
    assert not unused, f"{row['Script_file']} never reads {unused}"
    # SpeechBrain would pass these with a warning; here they must be read
    assert not guessed, f"only guessed from an f-string subscript: {guessed}"


def test_a_key_the_script_never_reads_is_found(tmp_path):
    yaml = tmp_path / "x.yaml"
    yaml.write_text(
        "lr: 0.1\nunused: 3\nsystem: !new:dict\n  a: !ref <lr>\n"
        "late: !ref <after>\nafter: 2\n"
    )
    script = tmp_path / "train.py"
    script.write_text('opt = hparams["system"]\nx = self.hparams.late\n')
    assert unused_variables(yaml, script) == (["unused", "after"], {})


def test_an_f_string_subscript_counts_only_as_a_guess(tmp_path):
    yaml = tmp_path / "x.yaml"
    yaml.write_text("w_valence: 1\nw_arousal: 1\n")
    script = tmp_path / "train.py"
    script.write_text('w = [hparams[f"w_{name}"] for name in names]\n')
    unused, guessed = unused_variables(yaml, script)
    assert unused == [] and sorted(guessed) == ["w_arousal", "w_valence"]


def python_files():
    """The package's and the recipes' Python files (SpeechBrain skips
    paths holding a double underscore)."""
    for folder in ("speechbrain_mtmm", "recipes"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__" not in path.relative_to(ROOT).as_posix():
                yield path


def test_every_module_class_and_function_has_a_docstring():
    missing = [m for path in python_files() for m in missing_docstrings(path)]
    assert not missing, "\n".join(missing)


def test_a_nested_function_without_a_docstring_is_found(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        '"""Module."""\n\n\ndef outer(x):\n    """Doc."""\n\n'
        "    def inner(y):\n        return y\n\n    return inner\n\n\n"
        "def _private(z):\n    return z\n"
    )
    assert missing_docstrings(path) == [f"{path}: inner"]


@pytest.mark.parametrize("row", rows())
def test_every_recipe_yaml_loads(row, tmp_path):
    flags = dict(
        flag[2:].split("=", 1) for flag in row["test_debug_flags"].split()
    )
    run_options = RunOptions().as_dict()
    overrides = {
        key: value for key, value in flags.items() if key not in run_options
    }
    overrides["output_folder"] = str(tmp_path)
    overrides = "\n".join(f"{key}: {value}" for key, value in overrides.items())
    with open(ROOT / row["Hparam_file"], encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    assert hparams["system"].labels == hparams["labels"]


@pytest.mark.parametrize("row", rows())
def test_the_performance_check_fails_at_chance(row, tmp_path):
    """A run that learned nothing (every class equally likely, CCC 0)
    fails the row's check: its threshold can fail."""
    line = (
        "Epoch loaded: 1, transcripts: gold - test loss: 1.39e+00, "
        "test WA: 2.50e-01, test UA: 2.50e-01, test macro_F1: 1.00e-01, "
        "test CCC_valence: 0.00e+00, test CCC_arousal: 0.00e+00, "
        "test CCC_mean: 0.00e+00\n"
    )
    (tmp_path / "train_log.txt").write_text(line)
    met, value, _ = performance_met(row["test_debug_checks"], tmp_path)
    assert value is not None and not met


@pytest.mark.slow
@pytest.mark.parametrize("row", rows())
def test_the_debug_flags_run_the_recipe_and_pass_its_checks(row, tmp_path):
    """As SpeechBrain's runner: from the repository root, the row's setup
    script writes the synthetic corpus its flags point at, then the recipe
    runs with the flags and the row's checks read its outputs."""
    env = dict(os.environ, **OFFLINE_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    setup = setup_script(ROOT, row)
    assert setup.is_file() and os.access(setup, os.X_OK), setup
    subprocess.run([str(setup)], cwd=ROOT, env=env, check=True)
    output = tmp_path / "run"
    command = recipe_command(ROOT, row, output)
    result = subprocess.run(
        command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = row["test_debug_checks"]
    assert not files_present(check, output)
    met, value, line = performance_met(check, output)
    assert met, (value, line)
    # the line read is the headline test result
    assert line.startswith("Epoch loaded") and "transcripts: gold" in line
    assert "test set" not in line or "test set: Test1" in line


def test_the_recipes_pass_speechbrains_ruff_configuration():
    config = (ROOT / "recipes" / "ruff.toml").read_text()
    assert 'known-first-party = ["speechbrain"]' in config
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "recipes"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_recipes_go_into_a_speechbrain_tree_without_overwriting(tmp_path):
    tree = tmp_path / "speechbrain"
    (tree / "recipes" / "IEMOCAP" / "emotion_recognition").mkdir(parents=True)
    (tree / "recipes" / "IEMOCAP" / "README.md").write_text("upstream")
    (tree / "tests" / "recipes" / "setup").mkdir(parents=True)
    header, *_ = (
        (ROOT / "tests" / "recipes" / "IEMOCAP.csv")
        .read_text(encoding="utf-8")
        .splitlines()
    )
    upstream = "Emotion_recognition,IEMOCAP," + ",".join(
        ["x"] * (header.count(",") - 1)
    )
    (tree / "tests" / "recipes" / "IEMOCAP.csv").write_text(
        f"{header}\n{upstream}\n", encoding="utf-8"
    )
    place(tree)
    readme = tree / "recipes" / "IEMOCAP" / "README.md"
    assert readme.read_text() == "upstream"
    merged = recipe_rows(tree / "tests" / "recipes" / "IEMOCAP.csv")
    ours = recipe_rows(ROOT / "tests" / "recipes" / "IEMOCAP.csv")
    assert [r["Hparam_file"] for r in merged] == ["x"] + [
        r["Hparam_file"] for r in ours
    ]
    for row in ours:
        assert (tree / row["Script_file"]).is_file()
        assert setup_script(tree, row).exists()
    with pytest.raises(FileExistsError):
        place(tree)
