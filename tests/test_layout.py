"""The package's layers: data flows one way, no import circle.

Every module of ``speechbrain_mtmm`` is read with ``ast`` (nothing is
imported); each import of a package module, at module level or inside a
function, must point to a lower layer or stay in the module's own
subpackage. The layers are those of the package docstring.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speechbrain_mtmm"
# layer of each top-level module or subpackage, bottom first
LAYERS = {
    "atomic": 0,
    "locks": 0,
    "plain_yaml": 0,
    "quiet": 0,
    "run_folder": 1,
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
        ["audio", "corpus", "folds", "tables", "synthetic"],
        ["fold_checks"],
        ["iemocap", "msp_podcast", "csv_corpus", "synthetic_csv"],
        ["synthetic_msp"],
        ["corpora"],
    ],
    "encoders": [["fingerprints"], ["base"], ["huggingface", "light", "asr"]],
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
    "experiments": [["aggregate"], ["reports"], ["sweep"], ["ablation"]],
    "inference": [["loading", "onnx_runtime"], ["recognizer"], ["predict"]],
    "sharing": [["interface", "model_card", "onnx_export"], ["export"]],
    "serving": [["batching", "model_info"], ["app"], ["server"]],
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
    """(imported module, line, inside a function) of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    nested = {
        id(inner)
        for fn in functions
        for inner in ast.walk(fn)
        if inner is not fn
    }
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
                yield name, node.lineno, id(node) in nested


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


def test_no_module_imports_the_package_inside_a_function():
    found = [
        f"{module}:{line} imports {target}"
        for module, path in MODULES.items()
        for target, line, inside in imports_of(module, path)
        if inside
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
