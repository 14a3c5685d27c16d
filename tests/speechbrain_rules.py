"""SpeechBrain's recipe rules, restated, so that this project's tests apply
them to its recipes as SpeechBrain's own tests would upstream.

SpeechBrain's checks (its repository's ``tests/consistency/`` and
``tests/utils/{check_yaml,check_docstrings,recipe_tests}.py``) are not part
of the installed ``speechbrain`` package, so their rules are written again
here, to the letter, from those files (SpeechBrain 1.1):

* :func:`yaml_variables` and :func:`script_variables`: every top-level key
  of a recipe YAML that no later ``!ref`` uses must be read by the script
  (``hparams["key"]``, ``hparams.key``, ``modules.key``, ...); keys of
  SpeechBrain's run options are exempt (:func:`unused_variables`).
  SpeechBrain also counts a variable as read when a line holds an
  f-string subscript such as ``hparams[f"{x}_json"]`` (it only warns);
  :func:`unused_variables` reports those lines apart (``guessed``) so that
  a test can refuse them: they would make the check pass for any key.
* :func:`hparam_files`: the YAML files under ``recipes/<Dataset>/`` that
  must be listed in ``tests/recipes/<Dataset>.csv`` (fragments under a
  ``/models/`` folder are not).
* :func:`missing_docstrings`: every module, class and function whose name
  does not start with ``_`` (nested ones too) opens with a docstring, as
  read line by line by SpeechBrain's checker.
* :func:`setup_script`, :func:`recipe_command`, :func:`files_present` and
  :func:`performance_met`: how SpeechBrain's recipe runner prepares, runs
  and checks one row of a recipe CSV.

``tests/place_in_speechbrain.py`` copies the recipes into a SpeechBrain
checkout, where SpeechBrain's own tests can be run on them as well.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
import os
import re
from pathlib import Path

from speechbrain.utils.run_opts import RunOptions

#: Paths SpeechBrain's recipe-list check leaves out (its ``avoid_list``
#: entries that can match here)
NOT_RECIPES = ("/models/", "/results/", "/pretrained_models/", "hpopt.yaml")
#: How SpeechBrain's checker recognises a read of ``key`` in a script
#: (substrings: ``hparams.lr`` is also found in ``hparams.lr_encoders``)
READ_PATTERNS = (
    '["{}"]',
    "hparams.{}",
    "modules.{}",
    'attr(self.hparams, "{}',
    'hparams.get("{}',
)
#: Subscripts SpeechBrain reads as "maybe a read" of keys (with a warning):
#: the suffix after an f-string field (the second pattern is tried only
#: where the first finds nothing), and the prefix before one
SUFFIX_GUESSES = (
    re.compile(r"\[f.\{.*\}(.*).\]"),
    re.compile(r"self\.hparams, f\"\{.*\}(.*)\""),
)
PREFIX_GUESS = re.compile(r"\[f.(.*)\{.*\}.\]")
_TEMPLATED = re.compile(r"\[.(.*){}(.*).\]")


def recipe_rows(csv_file):
    """The rows of a recipe CSV file, as dicts.

    Arguments
    ---------
    csv_file : str or path-like
        ``tests/recipes/<Dataset>.csv``.

    Returns
    -------
    list of dict
    """
    with open(csv_file, newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin, skipinitialspace=True))


def yaml_variables(hparam_file):
    """The top-level keys of a YAML that its script must read.

    Read line by line, as SpeechBrain does: a line with a colon or a
    ``!ref`` that starts with neither a space nor a tab (and holds neither
    ``!!`` nor ``!apply``) declares the key before its first colon; each
    ``<key>`` of a ``!ref`` line then drops that key, if declared before.
    Comment lines, empty lines and Pretrainer lines are skipped.

    Arguments
    ---------
    hparam_file : str or path-like
        The recipe YAML.

    Returns
    -------
    list of str

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("a: 1\\nb: !ref <a>\\nc: !ref <d>\\nd: 2\\n")
    >>> yaml_variables(path)
    ['b', 'c', 'd']
    """
    declared = []
    with open(hparam_file, encoding="utf-8") as fin:
        for line in fin:
            if (
                len(line) <= 1
                or line.startswith("#")
                or "speechbrain.utils.parameter_transfer.Pretrainer" in line
            ):
                continue
            line = line.rstrip()
            if ":" not in line and "!ref" not in line:
                continue
            name = line[: line.find(":")]
            if not (name[0] in (" ", "\t") or "!!" in line or "!apply" in line):
                declared.append(name)
            if "!ref" in line:
                for piece in line.split("<"):
                    used = piece[: piece.find(">")]
                    if "[" in used:
                        used = used[: used.find("[")]
                    if used in declared:
                        declared.remove(used)
    return declared


def script_variables(script_file, variables):
    """Which of ``variables`` a script reads, and which only by a guess.

    Arguments
    ---------
    script_file : str or path-like
        The recipe script.
    variables : list of str
        From :func:`yaml_variables`.

    Returns
    -------
    read : set of str
        Read by one of :data:`READ_PATTERNS` (or a templated key such as
        ``hparams["tea{}_enc"]``).
    guessed : dict
        Variable -> the f-string subscript SpeechBrain took for a read of
        it (and only warned about).

    Example
    -------
    >>> path = getfixture("tmp_path") / "train.py"
    >>> _ = path.write_text('x = hparams["lr"]\\ny = self.hparams.epochs\\n')
    >>> read, guessed = script_variables(path, ["lr", "epochs", "seed"])
    >>> sorted(read), guessed
    (['epochs', 'lr'], {})
    """
    read, guessed = set(), {}
    with open(script_file, encoding="utf-8") as fin:
        lines = fin.readlines()
    for line in lines:
        for name in variables:
            if any(p.format(name) in line for p in READ_PATTERNS):
                read.add(name)
                continue
            found = SUFFIX_GUESSES[0].search(line)
            found = found or SUFFIX_GUESSES[1].search(line)
            prefix = PREFIX_GUESS.search(line)
            for guess in (found, prefix):
                if guess and guess.group(1) in name:
                    guessed.setdefault(name, guess.group(0))
            templated = _TEMPLATED.search(line)
            if templated:
                template = templated.group(1) + ".*" + templated.group(2)
                try:
                    match = re.search(template, name)
                except re.error:
                    match = None
                if match and match.group() == name:
                    read.add(name)
    return read, guessed


def unused_variables(hparam_file, script_file):
    """SpeechBrain's YAML-vs-script rule: the keys a script never reads.

    Arguments
    ---------
    hparam_file : str or path-like
        The recipe YAML.
    script_file : str or path-like
        Its script.

    Returns
    -------
    unused : list of str
        Keys neither read, nor run options, nor guessed (SpeechBrain's
        check fails on these).
    guessed : dict
        Keys SpeechBrain would count as read only because some f-string
        subscript might read them (its check passes with a warning).
    """
    variables = yaml_variables(hparam_file)
    read, guessed = script_variables(script_file, variables)
    exempt = set(RunOptions().as_dict()) | {"rescoring_lm_scale"}
    unused = [
        name
        for name in variables
        if name not in read and name not in exempt and name not in guessed
    ]
    guessed = {
        name: line
        for name, line in guessed.items()
        if name not in read and name not in exempt
    }
    return unused, guessed


def hparam_files(root, dataset):
    """The YAML files under ``recipes/<dataset>/`` that the dataset's recipe
    CSV must list (SpeechBrain's ``test_recipe_list``).

    Arguments
    ---------
    root : pathlib.Path
        The repository root.
    dataset : str
        The CSV's name without ``.csv``.

    Returns
    -------
    list of str
        Paths relative to ``root``.
    """
    found = []
    for folder, _, names in os.walk(root / "recipes" / dataset):
        for name in names:
            path = (Path(folder) / name).relative_to(root).as_posix()
            if ".yaml" in path and not any(a in path for a in NOT_RECIPES):
                found.append(path)
    return sorted(found)


def _declared(line, keyword):
    """The name a ``def``/``class`` line declares (SpeechBrain's regex:
    the whole declaration on one line), or an empty string."""
    if keyword == "def":
        found = re.findall(r"(def)\s(.*)\(.*\)\:", line)
    else:
        found = re.findall(r"(class)\s(.*)\:", line)
    return "".join(name for _, name in found)


def missing_docstrings(path):
    """What lacks a docstring in a Python file, as SpeechBrain reads it.

    The first statement of the file, and the first line after each
    one-line ``def name(...):`` (name not starting with ``_``) or
    ``class Name...:``, must start with a quote (blank, comment, ``>>>``
    and ``...`` lines skipped).

    Arguments
    ---------
    path : str or path-like
        A Python file.

    Returns
    -------
    list of str
        ``"<path>: <name>"`` of each module, class or function without one.

    Example
    -------
    >>> path = getfixture("tmp_path") / "m.py"
    >>> _ = path.write_text("'''Doc.'''\\n\\ndef f(x):\\n    return x\\n")
    >>> [found.split(": ")[1] for found in missing_docstrings(path)]
    ['module', 'f']

    A docstring in single quotes does not count: SpeechBrain's checker
    looks for a double quote.
    """
    missing = []
    expecting, name = True, "module"
    with open(path, encoding="utf-8") as fin:
        for raw in fin:
            line = raw.strip()
            if (
                not line
                or line.startswith("#")
                or ">>>" in line
                or "..." in line
            ):
                continue
            if expecting:
                if line[0] != '"' and line[:2] != 'r"':
                    missing.append(f"{path}: {name}")
                expecting = False
                continue
            function = _declared(line, "def")
            if function and line.startswith("def"):
                if function.startswith("_"):
                    continue
                expecting, name = True, function
            cls = _declared(line, "class")
            if cls and line.startswith("class"):
                expecting, name = True, cls
    return missing


def setup_script(root, row):
    """The setup script SpeechBrain's runner executes before a row's test
    (it need not exist).

    Arguments
    ---------
    root : pathlib.Path
        The repository root.
    row : dict
        A recipe CSV row.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> row = {"Script_file": "recipes/A/task/train.py",
    ...        "Hparam_file": "recipes/A/task/hparams/x.yaml"}
    >>> setup_script(Path("."), row).as_posix()
    'tests/recipes/setup/recipes_A_task_train/hparams_x'
    """
    script, hparams = row["Script_file"].strip(), row["Hparam_file"].strip()
    relative = hparams.replace(os.path.dirname(script), "")[1:-5]
    return (
        root
        / "tests"
        / "recipes"
        / "setup"
        / script[:-3].replace("/", "_")
        / relative.replace("/", "_")
    )


def recipe_command(root, row, output_folder, run_opts="--device=cpu"):
    """The shell command SpeechBrain's runner runs for a row, from the
    repository root (the script's folder on ``PYTHONPATH``).

    Arguments
    ---------
    root : pathlib.Path
        The repository root.
    row : dict
        A recipe CSV row.
    output_folder : str
        Where the run goes (the runner's ``tests/tmp/<recipe id>``).
    run_opts : str
        Run options added to every test.

    Returns
    -------
    str
    """
    script = row["Script_file"].strip()
    flags = row["test_debug_flags"].strip()
    command = (
        f"PYTHONPATH={root}/{os.path.dirname(script)} python {script} "
        f"{row['Hparam_file'].strip()} {flags} {run_opts}"
    )
    if "--output_folder" not in flags:
        command += f" --output_folder={output_folder}"
    if "performance_check" not in row["test_debug_checks"]:
        command += " --debug --debug_persistently"
    return command


def files_present(check, output_folder):
    """The files of a row's ``file_exists=[...]`` missing from its run.

    Arguments
    ---------
    check : str
        The row's ``test_debug_checks``.
    output_folder : str or path-like
        The run's output folder.

    Returns
    -------
    list of str
        The missing ones.
    """
    listed = re.search(r"file_exists=\[(.*?)\]", check).group(1).split(",")
    return [f for f in listed if not os.path.exists(Path(output_folder) / f)]


def _value(line, key):
    """The number after ``key:`` in a log line (SpeechBrain's pattern: a
    decimal point is needed), or None."""
    found = re.search(
        rf"(?P<key>{re.escape(key)})\s*:\s*"
        r"(?P<value>[-+]?\d*\.\d+([eE][-+]?\d+)?)",
        line,
    )
    return None if found is None else found.group("value")


def meets(threshold, value):
    """Whether a value meets a threshold such as ``>=0.7`` (``==``, ``>=``,
    ``>``, ``<=``, ``<``, tested in that order).

    Arguments
    ---------
    threshold : str
        The row's threshold.
    value : float
        The value read from the log.

    Returns
    -------
    bool

    Example
    -------
    >>> meets(">=0.7", 0.7), meets(">=0.7", 0.69), meets("<100.0", 3.0)
    (True, False, True)
    """
    number = float(
        threshold.strip().replace("=", "").replace(">", "").replace("<", "")
    )
    if "==" in threshold:
        return value == number
    if ">=" in threshold:
        return value >= number
    if ">" in threshold:
        return value > number
    if "<=" in threshold:
        return value <= number
    if "<" in threshold:
        return value < number
    return False


def performance_met(check, output_folder):
    """A row's ``performance_check=[file, variable, threshold, epoch: N]``
    as SpeechBrain's runner reads it.

    The first line of ``file`` that holds ``epoch: N`` is read (with
    ``epoch: -1``, the last non-empty line of the file); its ``variable``
    must meet ``threshold``.

    Arguments
    ---------
    check : str
        The row's ``test_debug_checks``.
    output_folder : str or path-like
        The run's output folder.

    Returns
    -------
    tuple
        ``(met, value, line)``; ``met`` is True without a check.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "log.txt").write_text(
    ...     "epoch: 1 - valid WA: 9.0e-01\\n"
    ...     "Epoch loaded: 1 - test WA: 2.5e-01\\n")
    >>> performance_met("performance_check=[log.txt, test WA, >=0.7, "
    ...                 "epoch: -1]", folder)[:2]
    (False, 0.25)
    """
    found = re.search(r"performance_check=\[(.*?)\]", check)
    if found is None:
        return True, None, None
    name, variable, threshold, epoch = (
        part.strip() for part in found.group(1).split(",")
    )
    path = Path(output_folder) / name
    if not path.exists():
        return False, None, None
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    chosen = [line for line in lines if epoch in line]
    if int(epoch.split(":")[-1].strip()) == -1:
        last = [line for line in lines if line.strip()]
        chosen.append(last[-1] if last else "")
    if not chosen:
        return False, None, None
    value = _value(chosen[0], variable)
    if value is None:
        return False, None, chosen[0]
    return meets(threshold, float(value)), float(value), chosen[0]
