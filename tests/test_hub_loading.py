"""An export loads the way SpeechBrain's hosted models load.

One run with tiny random HF encoders (HuBERT + DeBERTa-v2), exported with
ONNX graphs (conftest's ``tiny_hf_run``, shared with the other modules
that test it); the export is also laid out in an offline HF hub cache
(``speechbrain_mtmm.testing.hub_cache``). Every loader
(``foreign_class`` with the export's ``custom_interface.py``,
``MultimodalEmotionRecognizer.from_hparams``, ``from_onnx``) must load it
from the folder, into a savedir elsewhere and by hub id, and predict what
the package's recognizer predicts from the folder; without this package
installed, ``foreign_class`` must run the code bundled in
``custom_interface.py`` and predict the same.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import huggingface_hub
import pytest
import torch
from speechbrain.inference.interfaces import Pretrained, foreign_class

from speechbrain_mtmm.inference.loading import (
    EXPORT_TAGS,
    ExportLoadError,
    files_to_load,
    yaml_tags,
)
from speechbrain_mtmm.inference.onnx_runtime import OnnxBackendError
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.sharing.export import TEMPLATE
from speechbrain_mtmm.sharing.export import record_digests as reseal
from speechbrain_mtmm.system import MultimodalEmotionSystem
from speechbrain_mtmm.testing.hub_cache import (
    lay_out_hub_cache,
    offline_hub_env,
)

REPO_ID = "mtmm-test/tiny-emotion"
TORCH_TOL = 1e-6  # the same weights and code: equal up to float noise
RECIPE_TOL = {"torch": 1e-4, "onnx": 2e-4}  # the recipe rounds to 1e-5


@pytest.fixture(scope="module")
def export(tiny_hf_run, synthetic_prepared):
    """(model folder, inputs, recipe rows): tiny HF encoders, exported
    with ONNX graphs (conftest's ``tiny_hf_run``). The inputs are three
    test utterances of the run (audio + transcript), then one without its
    transcript and one transcript alone; the recipe rows are what the
    recipe's test stage predicted for the first three (probabilities, then
    valence and arousal on 0-1), an independent reference."""
    model = tiny_hf_run.model
    with open(synthetic_prepared / "iemocap.json") as fin:
        manifest = json.load(fin)
    rows = tiny_hf_run.rows[:3]
    inputs = [
        (manifest[r["id"]]["wav"], manifest[r["id"]]["text"]) for r in rows
    ]
    inputs += [(inputs[0][0], None), (None, inputs[1][1])]
    labels = (model / "labels.txt").read_text().split()
    recipe = [
        [r["probs"][label] for label in labels]
        + [(r["pred_valence"] - 1) / 4, (r["pred_arousal"] - 1) / 4]
        for r in rows
    ]
    return model, inputs, recipe


@pytest.fixture(scope="module")
def hub_cache(export, tmp_path_factory):
    """An offline HF hub cache holding the export as ``REPO_ID``."""
    cache = tmp_path_factory.mktemp("hf_hub_cache")
    lay_out_hub_cache(export[0], cache, REPO_ID)
    return cache


@pytest.fixture
def offline_hub(hub_cache, monkeypatch):
    """This process resolves hub ids from ``hub_cache`` only."""
    for name, value in offline_hub_env(hub_cache).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache)
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def predictions(recognizer, inputs):
    """[probabilities..., dimensions...] per input, as plain floats."""
    rows = []
    for wav, text in inputs:
        if wav is None:
            result = recognizer.predict_text(text)
        else:
            result = recognizer.predict_file(wav, text)
        dims = [result["valence"], result["arousal"]]
        rows.append([*result["probs"].values(), *dims])
    return rows


@pytest.fixture(scope="module")
def reference(export):
    """The package's recognizer on the folder: PyTorch and ONNX rows."""
    model, inputs, _ = export
    torch_rows = predictions(
        MultimodalEmotionRecognizer.from_hparams(model), inputs
    )
    onnx_rows = predictions(
        MultimodalEmotionRecognizer.from_onnx(model), inputs
    )
    return {"torch": torch_rows, "onnx": onnx_rows}


def assert_rows_equal(got, expected, tol=TORCH_TOL):
    assert len(got) == len(expected)
    for row, want in zip(got, expected):
        assert row == pytest.approx(want, abs=tol)


def load(loader, source, savedir=None):
    """One of the three ways to load an export."""
    if loader == "foreign_class":
        return foreign_class(
            source=source,
            pymodule_file="custom_interface.py",
            classname="MultimodalEmotionRecognizer",
            savedir=savedir,
        )
    if loader == "from_hparams":
        return MultimodalEmotionRecognizer.from_hparams(
            source=source, savedir=savedir
        )
    return MultimodalEmotionRecognizer.from_onnx(source=source, savedir=savedir)


def copy_of(export, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(export[0], copy)
    return copy


# ##### What an export holds #####


def test_every_file_of_an_export_is_covered_by_its_digests(export):
    model = export[0]
    info = json.loads((model / "export_info.json").read_text())
    files = {
        p.relative_to(model).as_posix(): p
        for p in model.rglob("*")
        if p.is_file() and p.name != "export_info.json"
    }
    for name in ("custom_interface.py", "README.md", "onnx/head.onnx"):
        assert name in files
    assert sorted(info["sha256"]) == sorted(files)
    for name, path in files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert info["sha256"][name] == digest, name


def test_the_exported_hyperparams_hold_no_placeholder(export):
    hparams = export[0] / "hyperparams.yaml"
    assert "!PLACEHOLDER" not in hparams.read_text()
    assert yaml_tags(hparams) == EXPORT_TAGS
    template = TEMPLATE.read_text()
    assert "model_folder" not in template
    template_tags = yaml_tags(TEMPLATE)
    assert template_tags == (
        (("model_config",), "!PLACEHOLDER", ""),
        *EXPORT_TAGS,
    )


# ##### Three loaders, three places #####


@pytest.mark.parametrize("where", ["folder", "savedir", "hub_id"])
@pytest.mark.parametrize(
    "loader", ["foreign_class", "from_hparams", "from_onnx"]
)
def test_every_loader_loads_from_a_folder_a_savedir_and_a_hub_id(
    loader, where, export, reference, offline_hub, tmp_path
):
    model, inputs, recipe = export
    source = REPO_ID if where == "hub_id" else str(model)
    savedir = tmp_path / "saved" if where != "folder" else None
    recognizer = load(loader, source, savedir)
    assert type(recognizer) is MultimodalEmotionRecognizer  # installed code
    backend = "onnx" if loader == "from_onnx" else "torch"
    got = predictions(recognizer, inputs)
    assert_rows_equal(got[: len(recipe)], recipe, RECIPE_TOL[backend])
    assert_rows_equal(got, reference[backend])  # the masked inputs too
    digests = json.loads((model / "export_info.json").read_text())["sha256"]
    needed = files_to_load(digests, onnx=loader == "from_onnx")
    if savedir is not None:  # every file read, encoders' included, is there
        for name in needed:
            assert (savedir / name).is_file(), name
        assert recognizer.system.folder == savedir
    if where == "hub_id" and savedir is None:
        assert recognizer.system.folder.parent.name == "snapshots"


def test_speechbrain_pretrained_builds_the_modules_without_overrides(
    export, reference
):
    generic = Pretrained.from_hparams(source=str(export[0]))
    system = generic.mods.system
    assert isinstance(system, MultimodalEmotionSystem)
    package = MultimodalEmotionRecognizer.from_hparams(export[0]).system
    state = system.state_dict()
    assert state.keys() == package.state_dict().keys()
    for key, value in package.state_dict().items():
        assert torch.equal(state[key], value), key


def test_without_the_package_foreign_class_runs_the_bundled_code(
    export, reference, hub_cache, tmp_path
):
    """In a Python where speechbrain_mtmm cannot be imported (its paths
    and its editable-install finder removed), the hub id loads through
    custom_interface.py alone, and predicts as the package does."""
    model, inputs, recipe = export
    script = r"""
import importlib, importlib.util, json, os, sys
sys.path[:] = [
    p for p in sys.path
    if not os.path.isdir(os.path.join(p or os.getcwd(), "speechbrain_mtmm"))
]
sys.meta_path[:] = [
    f for f in sys.meta_path
    if "speechbrain_mtmm" not in getattr(f, "__module__", "")
]
importlib.invalidate_caches()
assert importlib.util.find_spec("speechbrain_mtmm") is None, "importable"
from speechbrain.inference.interfaces import foreign_class
source, savedir, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = foreign_class(
    source=source,
    pymodule_file="custom_interface.py",
    classname="MultimodalEmotionRecognizer",
    savedir=savedir,
)
onnx = type(model).from_onnx(source)

def rows(recognizer):
    out = []
    for wav, text in inputs:
        r = (recognizer.predict_text(text) if wav is None
             else recognizer.predict_file(wav, text))
        out.append([*r["probs"].values(), r["valence"], r["arousal"]])
    return out

import speechbrain_mtmm
print(json.dumps({
    "origin": speechbrain_mtmm.__spec__.origin,
    "class_module": type(model).__module__,
    "torch": rows(model),
    "onnx": rows(onnx),
}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(offline_hub_env(hub_cache), PYTHONNOUSERSITE="1")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            REPO_ID,
            str(tmp_path / "saved"),
            json.dumps(inputs),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    interface = tmp_path / "saved" / "custom_interface.py"
    assert out["origin"] == f"{interface}:speechbrain_mtmm"
    assert out["class_module"] == "speechbrain_mtmm.inference.recognizer"
    assert_rows_equal(out["torch"], reference["torch"])
    assert_rows_equal(out["onnx"], reference["onnx"])
    assert_rows_equal(out["torch"][: len(recipe)], recipe, RECIPE_TOL["torch"])


# ##### Trust #####


def test_a_yaml_tag_an_export_does_not_write_is_refused_unless_trusted(
    export, tmp_path
):
    copy = copy_of(export, tmp_path)
    marker = tmp_path / "ran"
    with open(copy / "hyperparams.yaml", "a") as fout:
        fout.write(f"\nevil: !apply:pathlib.Path.touch ['{marker}']\n")
    reseal(copy)  # the digests cannot protect against their own writer
    with pytest.raises(
        ExportLoadError,
        match=r"hyperparams.yaml: evil: !apply:pathlib.Path.touch is not "
        r"what mtmm export writes .* trust_remote_code=True",
    ):
        MultimodalEmotionRecognizer.from_hparams(copy)
    assert not marker.exists()
    MultimodalEmotionRecognizer.from_hparams(copy, trust_remote_code=True)
    assert marker.exists()


def test_a_fusion_class_named_by_import_path_is_refused_as_remote_code(
    export, tmp_path
):
    copy = copy_of(export, tmp_path)
    hparams = copy / "hyperparams.yaml"
    text = hparams.read_text()
    assert "fusion_type: " in text
    lines = [
        "    fusion_type: my_package.MyFusion"
        if line.strip().startswith("fusion_type:")
        else line
        for line in text.splitlines()
    ]
    hparams.write_text("\n".join(lines) + "\n")
    reseal(copy)
    with pytest.raises(
        ExportLoadError,
        match=r"model_config fusion_type is my_package.MyFusion, a class "
        "from outside speechbrain-mtmm",
    ):
        MultimodalEmotionRecognizer.from_hparams(copy)


# ##### Bad input: one line naming the file and what to do #####


def test_a_folder_that_is_not_an_export_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for loader in ("from_hparams", "from_onnx"):
        with pytest.raises(ExportLoadError) as error:
            load(loader, str(empty))
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(f"{empty}/hyperparams.yaml: missing; ")
        assert "mtmm export" in message
    run_like = tmp_path / "run"
    run_like.mkdir()
    (run_like / "hyperparams.yaml").write_text("seed: 1\n")
    with pytest.raises(ExportLoadError, match="no export_info.json: not a"):
        MultimodalEmotionRecognizer.from_hparams(run_like)


def test_a_hub_id_missing_from_the_offline_cache_is_named(offline_hub):
    for loader in ("from_hparams", "from_onnx"):
        with pytest.raises(ExportLoadError) as error:
            load(loader, "mtmm-test/not-there")
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(
            "mtmm-test/not-there: hyperparams.yaml not in the HF hub cache "
            f"({offline_hub}) and HF_HUB_OFFLINE is set"
        )


@pytest.mark.parametrize(
    "name, loader, error",
    [
        ("custom_interface.py", "foreign_class", ExportLoadError),
        ("hyperparams.yaml", "from_hparams", ExportLoadError),
        ("encoders/text/config.json", "from_hparams", ExportLoadError),
        ("onnx/head.onnx", "from_onnx", OnnxBackendError),
    ],
)
def test_a_file_whose_digest_differs_is_refused_naming_it(
    name, loader, error, export, tmp_path
):
    copy = copy_of(export, tmp_path)
    with open(copy / name, "ab") as fout:
        fout.write(b"\n")
    with pytest.raises(error) as raised:
        load(loader, str(copy), tmp_path / "saved")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'saved' / name}: missing or ")
    assert "differs from export_info.json" in message


# ##### Older exports #####


def test_an_export_made_before_custom_interface_loads_from_its_folder(
    export, reference, tmp_path
):
    """hyperparams.yaml as speechbrain-mtmm 0.2.0 wrote it (a
    model_folder placeholder), digests of system.ckpt only: refused, since
    the files it reads are not all signed (nothing is guessed); signed
    again by its owner, it loads from its folder."""
    copy = copy_of(export, tmp_path)
    hparams = copy / "hyperparams.yaml"
    text = hparams.read_text()
    new_system = (
        "system: !new:speechbrain_mtmm.inference.loading.ExportedSystem\n"
        "    config: !ref <model_config>\n"
    )
    new_pretrainer = (
        "pretrainer: !new:speechbrain_mtmm.inference.loading.ExportPretrainer\n"
        "    system: !ref <system>\n"
    )
    assert new_system in text and new_pretrainer in text
    text = text.replace(
        new_system,
        "system: !new:speechbrain_mtmm.MultimodalEmotionSystem\n"
        "    config: !ref <model_config>\n    freeze: frozen\n"
        "    pretrained: False\n    root: !ref <model_folder>\n",
    ).replace(
        new_pretrainer,
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "    loadables:\n        system: !ref <system>\n"
        "    custom_hooks:\n        system: !name:speechbrain_mtmm."
        "inference.recognizer.load_state_dict_strict\n",
    )
    hparams.write_text("model_folder: !PLACEHOLDER\n" + text)
    (copy / "custom_interface.py").unlink()
    info = json.loads((copy / "export_info.json").read_text())
    info["sha256"] = {"system.ckpt": info["sha256"]["system.ckpt"]}
    del info["self_sha256"]  # not written then
    (copy / "export_info.json").write_text(json.dumps(info))
    for loader in ("from_hparams", "from_onnx"):
        with pytest.raises(ExportLoadError) as raised:
            load(loader, str(copy))
        message = str(raised.value)
        assert message.startswith(f"{copy / 'export_info.json'}: no ")
        assert "record_digests" in message and "\n" not in message
    reseal(copy)
    recognizer = MultimodalEmotionRecognizer.from_hparams(copy)
    got = predictions(recognizer, export[1])
    assert_rows_equal(got[: len(export[2])], export[2], RECIPE_TOL["torch"])
    assert_rows_equal(got, reference["torch"])
    onnx = MultimodalEmotionRecognizer.from_onnx(copy)
    assert_rows_equal(predictions(onnx, export[1]), reference["onnx"])


def test_the_model_card_shows_foreign_class_and_the_package(export):
    card = (export[0] / "README.md").read_text()
    assert "from speechbrain.inference.interfaces import foreign_class" in card
    assert 'pymodule_file="custom_interface.py"' in card
    assert "MultimodalEmotionRecognizer.from_hparams(" in card
    assert "pip install speechbrain-mtmm" not in card  # not on any index
