"""SpeechBrain's recipe conventions, so that a recipe can go upstream.

``tests/recipes/<Dataset>.csv`` lists every recipe YAML with SpeechBrain's
columns; as SpeechBrain's ``tests/consistency`` does, the listed files must
exist, every recipe YAML must be listed with debug flags, every top-level
key of a YAML must be read by its script (or the shared recipe steps it
imports from the library), and the debug flags must run the
recipe (here on the synthetic corpus) and pass the row's checks
(``file_exists=[...]``, ``performance_check=[file, key, threshold,
epoch: N]``, parsed as SpeechBrain's ``tests/utils/recipe_tests.py`` does;
those test utilities are not part of the installed speechbrain package, so
their rules are restated here).
"""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.run_opts import RunOptions

from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap
from speechbrain_mtmm.data.synthetic_msp import RELEASE_DIRNAME as MSP_RELEASE
from speechbrain_mtmm.data.synthetic_msp import generate_synthetic_msp_podcast
from speechbrain_mtmm.testing.demo import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CSVS = sorted((ROOT / "tests" / "recipes").glob("*.csv"))
FILE_FIELDS = ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file")
# YAML files under recipes/ that are fragments or override sets, not recipes
NOT_RECIPES = ("/encoders/", "tiny_overrides.yaml")


def rows():
    for path in RECIPE_CSVS:
        with open(path, newline="", encoding="utf-8") as fin:
            for number, row in enumerate(csv.DictReader(fin), start=1):
                yield pytest.param(row, id=f"{path.stem}_row_{number:02d}")


def yaml_keys(hparam_file):
    """Top-level keys no other entry references (SpeechBrain's
    ``get_yaml_var``)."""
    text = Path(hparam_file).read_text(encoding="utf-8")
    keys = []
    for line in text.splitlines():
        if not line.strip() or line[0] in " \t#" or ":" not in line:
            continue
        if "!!" in line or "!apply" in line:
            continue
        keys.append(line.split(":")[0].strip())
    referenced = set(re.findall(r"<([\w]+)", text))
    return [key for key in keys if key not in referenced]


def used_in(key, source):
    """SpeechBrain's ``detect_script_vars`` patterns."""
    patterns = (
        f'["{key}"]',
        f"hparams.{key}",
        f"modules.{key}",
        f'attr(self.hparams, "{key}',
        f'hparams.get("{key}',
    )
    return any(pattern in source for pattern in patterns)


@pytest.mark.parametrize("row", rows())
def test_the_listed_recipe_files_exist(row):
    for field in FILE_FIELDS:
        assert (ROOT / row[field]).is_file(), f"{field}: {row[field]}"


def test_every_recipe_yaml_is_listed_with_debug_flags():
    listed = {}
    for path in RECIPE_CSVS:
        with open(path, newline="", encoding="utf-8") as fin:
            for row in csv.DictReader(fin):
                listed[row["Hparam_file"]] = row["test_debug_flags"]
    for path in RECIPE_CSVS:
        for yaml in sorted((ROOT / "recipes" / path.stem).rglob("*.yaml")):
            name = yaml.relative_to(ROOT).as_posix()
            if any(part in f"/{name}" for part in NOT_RECIPES):
                continue
            assert listed.get(name), f"{name}: not in {path.name}"


# The recipe steps shared by the recipes live in the library (one Brain for
# IEMOCAP and MSP-Podcast); a key read there counts as read by a script
# that imports them. A recipe sent upstream inlines these modules.
SHARED_STEPS = ("training/brain.py", "training/recipe.py")


def script_source(script_file):
    """The script and the shared recipe steps it imports."""
    source = (ROOT / script_file).read_text(encoding="utf-8")
    for module in SHARED_STEPS:
        dotted = "speechbrain_mtmm." + module[:-3].replace("/", ".")
        if f"from {dotted} import" in source:
            path = ROOT / "speechbrain_mtmm" / module
            source += path.read_text(encoding="utf-8")
    return source


@pytest.mark.parametrize("row", rows())
def test_every_top_level_key_is_read_by_the_script(row):
    script = script_source(row["Script_file"])
    exempt = set(RunOptions().as_dict())
    unused = [
        key
        for key in yaml_keys(ROOT / row["Hparam_file"])
        if not used_in(key, script) and key not in exempt
    ]
    assert not unused, f"{row['Script_file']} never reads {unused}"


def test_a_key_the_script_never_reads_is_found(tmp_path):
    yaml = tmp_path / "x.yaml"
    yaml.write_text("lr: 0.1\nunused: 3\nsystem: !new:dict\n  a: <lr>\n")
    keys = yaml_keys(yaml)
    assert keys == ["unused", "system"]
    assert not used_in("unused", 'hparams["lr"]; self.hparams.system')


@pytest.mark.parametrize("row", rows())
def test_every_recipe_yaml_loads(row):
    flags = dict(
        flag[2:].split("=", 1) for flag in row["test_debug_flags"].split()
    )
    run_options = RunOptions().as_dict()
    overrides = "\n".join(
        f"{key}: {value}"
        for key, value in flags.items()
        if key not in run_options
    )
    with open(ROOT / row["Hparam_file"], encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    assert hparams["system"].labels == hparams["labels"]


def performance_values(check, output):
    """``(value, threshold)`` of a ``performance_check=[...]`` (or None)."""
    found = re.search(r"performance_check=\[(.*?)\]", check)
    if not found:
        return None
    file, key, threshold, epoch = (f.strip() for f in found[1].split(","))
    lines = [
        line
        for line in (output / file).read_text().splitlines()
        if line.strip()
    ]
    epoch = epoch.split(":")[1].strip()
    line = (
        lines[-1]
        if epoch == "-1"
        else next(line for line in lines if f"epoch: {epoch}" in line)
    )
    value = re.search(rf"{key}\s*:\s*([-+]?\d*\.\d+([eE][-+]?\d+)?)", line)
    assert value, f"{key} not in {line}"
    return float(value[1]), threshold


def meets(value, threshold):
    operator, number = re.match(r"(==|>=|<=|>|<)\s*(.+)", threshold).groups()
    number = float(number)
    return {
        "==": value == number,
        ">=": value >= number,
        "<=": value <= number,
        ">": value > number,
        "<": value < number,
    }[operator]


@pytest.mark.parametrize("row", rows())
def test_the_debug_flags_run_the_recipe_and_pass_its_checks(row, tmp_path):
    """Run from the repository root as SpeechBrain's runner does, on the
    synthetic corpus written where the flags expect it."""
    flags = row["test_debug_flags"].split()
    data = next(f for f in flags if f.startswith("--data_folder="))
    release = ROOT / data.split("=", 1)[1]
    if not release.is_dir():
        if release.name == MSP_RELEASE:
            generate_synthetic_msp_podcast(release.parent, n_utterances=80)
        else:
            generate_synthetic_iemocap(
                release.parent, seed=0, utterances_per_dialog=4
            )
    output = tmp_path / "run"
    command = [
        sys.executable,
        row["Script_file"],
        row["Hparam_file"],
        *flags,
        "--device=cpu",
        f"--output_folder={output}",
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE_ENV),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = row["test_debug_checks"]
    files = re.search(r"file_exists=\[(.*?)\]", check)[1].split(",")
    for name in files:
        assert (output / name).exists(), name
    performance = performance_values(check, output)
    if performance:
        assert meets(*performance), performance
