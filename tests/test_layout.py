"""The package's layers: data flows one way, no import circle.

Every module of ``speechbrain_mtmm`` is read with ``ast`` (nothing is
imported); each import of a package module, at module level or inside a
function, must point to a lower layer or stay in the module's own
subpackage. The layers are those of the package docstring.

Package imports sit at module level, except in the ``mtmm`` command's
verb dispatch (``cli.main`` and the verb handlers): help and usage errors
must be instant, so the CLI imports only light modules and each handler
imports the heavy code it runs. The last tests check, in fresh
interpreters, that the package, the CLI, its help and its usage errors
load no torch.
"""

import argparse
import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speechbrain_mtmm"
# layer of each top-level module or subpackage, bottom first
LAYERS = {
    "atomic": 0,
    "locks": 0,
    "plain_yaml": 0,
    "quiet": 0,
    "lazy": 0,
    "run_folder": 1,
    "slurm": 2,
    "nnet": 2,
    "data": 2,
    "encoders": 3,
    "system": 4,
    "training": 5,
    "experiments": 6,
    "inference": 6,
    "sharing": 7,
    "serving": 8,
    "testing": 9,
    "demo": 10,
    "cli": 11,
    "__main__": 12,
}
# Inside a subpackage, its modules in layers too, bottom first: a module
# imports only modules of lower groups (its __init__ may import any)
SUBLAYERS = {
    "nnet": [
        [
            "padding",
            "heads",
            "layer_sum",
            "masking",
            "model",
            "auxiliary_heads",
        ],
        ["fusion", "refinement"],
        ["mmer"],
        ["builders"],
    ],
    "data": [
        ["catalog"],
        ["audio", "corpus", "folds", "tables", "synthetic"],
        ["fold_checks"],
        ["iemocap", "msp_podcast", "csv_corpus", "synthetic_csv"],
        ["synthetic_msp"],
        ["corpora"],
    ],
    "encoders": [
        ["fingerprints"],
        ["base"],
        ["huggingface", "light", "asr"],
        ["whisper"],
    ],
    "training": [
        [
            "losses",
            "checkpoints",
            "optim",
            "speed",
            "cache",
            "transcripts",
            "auxiliary_losses",
        ],
        ["metrics", "hparams"],
        ["splits", "batches", "inputs"],
        ["run"],
    ],
    "experiments": [
        ["options"],
        ["aggregate"],
        ["reports"],
        ["sweep"],
        ["ablation"],
    ],
    "inference": [
        ["model_source"],
        ["loading", "onnx_runtime", "shards"],
        ["recognizer"],
        ["ensemble"],
        ["predict"],
    ],
    "sharing": [["interface", "model_card", "onnx_export"], ["export"]],
    "serving": [["settings"], ["batching", "model_info"], ["app"], ["server"]],
    "testing": [["tiny_models", "hub_cache"], ["recipes"]],
}


def unit_of(module):
    """``speechbrain_mtmm.training.cache`` -> ``training``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports_of(module, path):
    """(imported module, line, the outermost function it is in or None) of
    a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    owner = {}  # outer functions come first in ast.walk's order
    for fn in functions:
        for inner in ast.walk(fn):
            if inner is not fn:
                owner.setdefault(id(inner), fn.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[
                        : len(package.split(".")) - node.level + 1
                    ]
                    + ([node.module] if node.module else [])
                )
            names = [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "speechbrain_mtmm":
                yield name, node.lineno, owner.get(id(node))


MODULES = dict(package_modules())


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m != "speechbrain_mtmm"]
)
def test_imports_point_down_the_layers(module):
    mine = unit_of(module)
    for target, line, _ in imports_of(module, MODULES[module]):
        theirs = unit_of(target)
        where = f"{MODULES[module].name}:{line} imports {target}"
        assert theirs, f"{where}: import the submodule, not the package"
        if theirs == mine:
            continue
        assert LAYERS[theirs] < LAYERS[mine], f"{where}: an upward import"


def sublayer_of(module):
    """``speechbrain_mtmm.training.run`` -> (``training``, its group)."""
    parts = module.split(".")
    if len(parts) < 3:
        return None, None
    groups = SUBLAYERS.get(parts[1], [])
    found = [i for i, group in enumerate(groups) if parts[2] in group]
    return parts[1], found[0] if found else None


@pytest.mark.parametrize(
    "module", [m for m in MODULES if len(m.split(".")) > 2]
)
def test_imports_point_down_the_layers_inside_a_subpackage(module):
    unit, mine = sublayer_of(module)
    assert mine is not None, f"{module}: no group in SUBLAYERS[{unit!r}]"
    for target, line, _ in imports_of(module, MODULES[module]):
        theirs_unit, theirs = sublayer_of(target)
        if theirs_unit != unit or theirs is None and target.count(".") < 2:
            continue
        where = f"{MODULES[module].name}:{line} imports {target}"
        assert theirs is not None and theirs < mine, f"{where}: not below"


def verb_dispatch():
    """The functions of ``cli.py`` that may import inside: ``main`` and
    the handlers given to ``verb(name, handler, ...)`` in its parser."""
    tree = ast.parse(MODULES["speechbrain_mtmm.cli"].read_text("utf-8"))
    handlers = {
        node.args[1].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "verb"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Name)
    }
    return handlers | {"main"}


def test_the_verb_dispatch_is_found_in_the_cli():
    assert {"main", "_prepare", "_cv", "_predict", "_serve"} <= verb_dispatch()


def test_no_module_imports_the_package_inside_a_function():
    # but the CLI's verb dispatch: help must be instant (module docstring)
    dispatch = verb_dispatch()
    found = [
        f"{module}:{line} imports {target}"
        for module, path in MODULES.items()
        for target, line, inside in imports_of(module, path)
        if inside
        and not (module == "speechbrain_mtmm.cli" and inside in dispatch)
    ]
    assert not found


def test_there_is_no_import_circle():
    graph = {
        module: {
            target
            for target, _, _ in imports_of(module, path)
            if target in MODULES and target != module
        }
        for module, path in MODULES.items()
        if module != "speechbrain_mtmm"
    }
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for target in graph.get(module, ()):
            if state.get(target) == "open":
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_every_unit_of_the_package_has_a_layer():
    units = {unit_of(m) for m in MODULES if m != "speechbrain_mtmm"}
    assert units == set(LAYERS)


# What ``mtmm --help`` and usage errors must not load (seconds each)
HEAVY = ("torch", "speechbrain", "transformers", "torchaudio", "fastapi")
# A fresh interpreter: runs ``mtmm <argv>`` (JSON argv) and prints, last,
# its exit code and the heavy modules it loaded
RUNNER = """
import json, runpy, sys
watched = json.loads(sys.argv[2])
sys.argv = ["mtmm", *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_module("speechbrain_mtmm", run_name="__main__")
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in watched if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def fresh_python(args, cwd):
    """Runs ``python <args>`` in a fresh interpreter on this checkout."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE.parent), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def run_mtmm(argv, cwd):
    """(exit code, heavy modules loaded, stderr) of ``mtmm <argv>``."""
    result = fresh_python(
        ["-c", RUNNER, json.dumps(argv), json.dumps(HEAVY + ("numpy",))],
        cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["code"], report["heavy"], result.stderr


@pytest.mark.parametrize("module", ["speechbrain_mtmm", "speechbrain_mtmm.cli"])
def test_importing_the_package_or_its_cli_loads_no_torch(module, tmp_path):
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(set(sys.modules) & set(sys.argv[1:]))))"
    )
    result = fresh_python(["-c", code, *HEAVY, "numpy"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "package",
    ["speechbrain_mtmm", "speechbrain_mtmm.data", "speechbrain_mtmm.inference"],
)
def test_every_public_name_of_a_lazy_package_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None and name in dir(module)


def test_a_public_name_is_the_object_of_its_module():
    import speechbrain_mtmm
    from speechbrain_mtmm.training.losses import MultiTaskLoss

    assert speechbrain_mtmm.MultiTaskLoss is MultiTaskLoss


def verbs():
    """The verbs of the ``mtmm`` parser."""
    from speechbrain_mtmm.cli import build_parser

    (action,) = [
        a
        for a in build_parser()._actions
        if isinstance(a, argparse._SubParsersAction)
    ]
    return list(action.choices)


@pytest.mark.parametrize("verb", [None, *verbs()])
def test_help_loads_no_torch(verb, tmp_path):
    argv = [verb, "--help"] if verb else ["--help"]
    code, heavy, _ = run_mtmm(argv, tmp_path)
    assert (code, heavy) == (0, [])


# (argv, exit code, the error's line as the verb has always printed it)
USAGE_ERRORS = {
    "a_missing_argument": (
        ["export", "--out", "m"],
        2,
        "mtmm export: error: one of the arguments --run --sweep is required",
    ),
    "an_unknown_verb": (
        ["frobnicate"],
        2,
        "mtmm: error: argument VERB: invalid choice: 'frobnicate' (choose "
        "from ",
    ),
    "a_missing_model_folder_to_predict": (
        ["predict", "--model", "./no_model", "--text", "Yeah."],
        2,
        "mtmm predict: error: cannot load the model ./no_model: "
        "./no_model: no such folder (nor an HF hub id, org/name); give a "
        "model folder written by mtmm export or a hub id",
    ),
    "a_missing_model_folder_to_serve": (
        ["serve", "--model", "/no/model"],
        2,
        "mtmm serve: error: cannot load the model /no/model: /no/model: "
        "no such folder (nor an HF hub id, org/name); give a model folder "
        "written by mtmm export or a hub id",
    ),
    "a_missing_recipe_to_cv": (
        ["cv", "/no/recipe.yaml"],
        1,
        "mtmm cv: FileNotFoundError: no recipe YAML at /no/recipe.yaml",
    ),
    "a_missing_recipe_to_table": (
        ["table", "/no/recipe.yaml"],
        1,
        "mtmm table: FileNotFoundError: no recipe YAML at /no/recipe.yaml",
    ),
    "a_missing_data_folder_to_prepare": (
        ["prepare", "--save_folder", "out"],
        2,
        "mtmm prepare iemocap: error: --data_folder is required",
    ),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_is_answered_without_torch(case, tmp_path):
    argv, expected_code, line = USAGE_ERRORS[case]
    code, heavy, stderr = run_mtmm(argv, tmp_path)
    # numpy may come with the reporting of a system error (atomic.py)
    assert (code, set(heavy) - {"numpy"}) == (expected_code, set())
    assert stderr.strip().splitlines()[-1].startswith(line)
