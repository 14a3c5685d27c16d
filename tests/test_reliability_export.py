"""Reliability of exports and their loaders (issue 28, items 1, 9, 10, 11,
19, 21).

The rules checked here:

* **Nothing destroys data it did not create**: ``mtmm export --overwrite``
  replaces only a folder ``mtmm export`` wrote, never one that is, holds or
  lies inside a run, a sweep, a corpus or the current directory; an export
  is written into a staging folder of its own (pid + random) and renamed
  into place, one export at a time per target.
* **An export is one signed unit**: every file a loader reads is covered by
  ``export_info.json`` (which carries a digest of itself); a missing or
  changed file is a one-line refusal naming it.
* **Code in a model folder runs only when the user says so**: a
  ``hyperparams.yaml`` tag an export does not write is refused before
  HyperPyYAML reads the file, unless ``trust_remote_code=True`` /
  ``mtmm predict --trust_remote_code``.

Fixtures: conftest's ``light_run`` (fbank/hashing, 1 epoch), exported once
per module, and conftest's ``tiny_hf_run`` export with ONNX graphs; tests
change copies.
"""

import json
import os
import shutil
import subprocess
import sys

import huggingface_hub
import pytest
from speechbrain.inference.interfaces import foreign_class

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.inference.loading import ExportLoadError
from speechbrain_mtmm.inference.onnx_runtime import OnnxBackendError
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import file_digest
from speechbrain_mtmm.sharing import export as export_module
from speechbrain_mtmm.sharing.export import (
    ExportError,
    export_model,
    record_digests,
)
from speechbrain_mtmm.testing.hub_cache import (
    lay_out_hub_cache,
    offline_hub_env,
)
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV

LOAD_ERRORS = (ExportLoadError, OnnxBackendError)


@pytest.fixture(scope="module")
def run(light_run):
    """The shared light run folder (copy it before changing it)."""
    return light_run.folder


@pytest.fixture(scope="module")
def model(run, tmp_path_factory):
    """The light run exported (PyTorch only)."""
    return export_model(run, tmp_path_factory.mktemp("export") / "model")


@pytest.fixture(scope="module")
def onnx_model(tiny_hf_run):
    """A model exported with ONNX graphs (conftest's ``tiny_hf_run``, shared
    with the modules that test its graphs: an ONNX export takes long)."""
    return tiny_hf_run.model


def copy_of(folder, tmp_path, name="copy"):
    return shutil.copytree(folder, tmp_path / name)


def snapshot(folder):
    """Path -> digest of every file under a folder."""
    return {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_line(error):
    message = str(error)
    assert "\n" not in message, message
    return message


def load(loader, source, **kwargs):
    if loader == "from_hparams":
        return MultimodalEmotionRecognizer.from_hparams(source, **kwargs)
    if loader == "from_onnx":
        return MultimodalEmotionRecognizer.from_onnx(source, **kwargs)
    return foreign_class(
        source=str(source),
        pymodule_file="custom_interface.py",
        classname="MultimodalEmotionRecognizer",
        **kwargs,
    )


def predict_error(capsys, *args):
    """Runs mtmm predict, which must fail with exit code 2; its one error
    line."""
    capsys.readouterr()
    assert mtmm(["predict", *args, "--text", "Yeah."]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("mtmm predict")]
    assert len(lines) == 1, err
    return lines[0]


# ##### 1: --overwrite destroys nothing it did not create #####


@pytest.mark.parametrize("inside", ["save", "save/sub", "new_folder"])
def test_overwrite_refuses_an_output_folder_inside_the_run(
    inside, run, tmp_path
):
    run_copy = copy_of(run, tmp_path, "run")
    out = run_copy / inside
    out.mkdir(parents=True, exist_ok=True)
    (out / "mine.txt").write_text("x")
    before = snapshot(run_copy)
    with pytest.raises(ExportError) as raised:
        export_model(run_copy, out, overwrite=True)
    message = one_line(raised.value)
    assert message.startswith(f"{out}: ")
    assert "run folder" in message and "--out" in message
    assert snapshot(run_copy) == before  # checkpoints untouched
    assert not list(tmp_path.rglob(".*export*"))  # no staging left


def test_cli_export_into_the_runs_checkpoints_is_one_line_and_keeps_them(
    run, tmp_path, capsys
):
    run_copy = copy_of(run, tmp_path, "run")
    before = snapshot(run_copy)
    args = ["export", "--run", str(run_copy), "--out", str(run_copy / "save")]
    assert mtmm([*args, "--overwrite"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"{run_copy / 'save'}: " in err
    assert snapshot(run_copy) == before


def test_overwrite_refuses_a_folder_holding_another_run(run, tmp_path):
    out = tmp_path / "results"
    copy_of(run, out, "other_run")
    before = snapshot(out)
    with pytest.raises(ExportError, match="holds the run folder") as raised:
        export_model(run, out, overwrite=True)
    assert str(out / "other_run") in one_line(raised.value)
    assert snapshot(out) == before


def test_overwrite_refuses_a_sweep_folder(run, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "cv_results.json").write_text("{}")
    with pytest.raises(ExportError, match="sweep"):
        export_model(run, sweep, overwrite=True)
    assert (sweep / "cv_results.json").is_file()


@pytest.mark.parametrize("kind", ["prepared", "audio"])
def test_overwrite_refuses_a_corpus_folder(kind, run, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    if kind == "prepared":
        (corpus / "iemocap.json").write_text("{}")
    else:
        (corpus / "sub" / "a.wav").write_bytes(b"RIFF")
    before = snapshot(corpus)
    with pytest.raises(ExportError, match="corpus") as raised:
        export_model(run, corpus, overwrite=True)
    one_line(raised.value)
    assert snapshot(corpus) == before


@pytest.mark.parametrize("out", [".", "..", "../.."])
def test_overwrite_refuses_the_current_directory_and_its_parents(
    out, run, tmp_path, monkeypatch
):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(ExportError, match="current directory") as raised:
        export_model(run, out, overwrite=True)
    one_line(raised.value)
    assert (work / "notes.txt").read_text() == "mine"


def test_overwrite_refuses_a_model_folder_holding_files_it_did_not_write(
    model, run, tmp_path
):
    out = copy_of(model, tmp_path, "model")
    (out / "my_notes.txt").write_text("mine")
    with pytest.raises(ExportError) as raised:
        export_model(run, out, overwrite=True)
    message = one_line(raised.value)
    assert message.startswith(f"{out / 'my_notes.txt'}: not written by ")
    assert (out / "my_notes.txt").read_text() == "mine"


def test_overwrite_may_replace_a_sweep_export_but_not_a_file_added_to_it(
    model, tmp_path
):
    models = tmp_path / "models"
    shutil.copytree(model, models / "speaker_fold1" / "seed1")
    (models / "README.md").write_text("the sweep card")
    assert export_module.replace_problem(models) is None
    stray = models / "speaker_fold1" / "plot.png"
    stray.write_bytes(b"png")
    message = export_module.replace_problem(models)
    assert message.startswith(f"{stray}: not written by mtmm export")


def test_overwrite_replaces_an_earlier_export_through_a_rename(
    model, run, tmp_path
):
    out = copy_of(model, tmp_path, "model")
    (out / "README.md").write_text("an old card")
    record_digests(out)
    export_model(run, out, overwrite=True)
    assert "an old card" not in (out / "README.md").read_text()
    MultimodalEmotionRecognizer.from_hparams(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ##### 19: two exports to one folder #####


def test_a_second_export_to_a_folder_being_written_is_refused_first_wins(
    run, tmp_path, monkeypatch
):
    out = tmp_path / "model"
    card = export_module.run_card
    seen = {}

    def card_with_a_second_export(*args, **kwargs):
        """A second export to the same folder while the first writes."""
        if seen:
            return card(*args, **kwargs)
        seen["second"] = "started"
        try:
            export_model(run, out, overwrite=True)
            seen["second"] = "exported"
        except ExportError as error:
            seen["second"] = one_line(error)
        return card(*args, **kwargs)

    monkeypatch.setattr(export_module, "run_card", card_with_a_second_export)
    export_model(run, out)
    assert seen["second"].startswith(f"{out}: another mtmm export is ")
    MultimodalEmotionRecognizer.from_hparams(out)  # complete and signed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_export_refuses_a_target_locked_by_another_process(run, tmp_path):
    out = tmp_path / "model"
    lock = export_module.target_lock(out)
    with lock:
        with pytest.raises(ExportError, match="another mtmm export") as e:
            export_model(run, out)
        assert f"process {os.getpid()}" in one_line(e.value)
    assert not out.exists()
    export_model(run, out)  # released: free again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_staging_folder_left_by_a_killed_export_is_cleaned_up(run, tmp_path):
    out = tmp_path / "model"
    stale = tmp_path / ".model.export-99999-deadbeef"
    (stale / "encoders").mkdir(parents=True)
    export_model(run, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_two_export_commands_at_once_never_both_fail(run, tmp_path):
    out = tmp_path / "model"
    command = [sys.executable, "-m", "speechbrain_mtmm", "export"]
    command += ["--run", str(run), "--out", str(out), "--overwrite"]
    env = dict(os.environ, **OFFLINE_ENV)
    procs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        if code:
            assert "another mtmm export is writing it" in err, err
    MultimodalEmotionRecognizer.from_hparams(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ##### 9: no export_info.json, no load #####


@pytest.mark.parametrize(
    "loader", ["from_hparams", "from_onnx", "foreign_class"]
)
def test_an_export_without_export_info_is_refused_naming_it(
    loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    (folder / "export_info.json").unlink()
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    message = one_line(raised.value)
    assert message.startswith(f"{folder / 'export_info.json'}: missing")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_refuses_an_export_without_export_info_naming_it(
    backend, onnx_model, tmp_path, capsys
):
    folder = copy_of(onnx_model, tmp_path)
    (folder / "export_info.json").unlink()
    line = predict_error(capsys, "--model", str(folder), "--backend", backend)
    assert f"{folder / 'export_info.json'}: missing" in line


def test_a_hub_export_without_export_info_is_refused_naming_it(
    model, tmp_path, monkeypatch
):
    folder = copy_of(model, tmp_path)
    (folder / "export_info.json").unlink()
    cache = tmp_path / "hub"
    lay_out_hub_cache(folder, cache, "org/model")
    for name, value in offline_hub_env(cache).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ExportLoadError) as raised:
        MultimodalEmotionRecognizer.from_hparams("org/model")
    message = one_line(raised.value)
    assert message.startswith("org/model: export_info.json not in the HF hub")


@pytest.mark.parametrize("loader", ["from_hparams", "from_onnx"])
def test_an_export_info_without_digests_is_refused(
    loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    hparams = folder / "hyperparams.yaml"
    hparams.write_text(hparams.read_text().replace("neu", "NEU"))
    info = json.loads((folder / "export_info.json").read_text())
    del info["sha256"]
    (folder / "export_info.json").write_text(json.dumps(info))
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    assert one_line(raised.value).startswith(f"{folder / 'export_info.json'}:")


# ##### 10: every file a loader reads is signed #####


def swap_two_labels(hparams):
    text = hparams.read_text()
    assert "labels: [neu, hap, sad, ang]" in text
    swapped = "labels: [hap, neu, sad, ang]"
    hparams.write_text(text.replace("labels: [neu, hap, sad, ang]", swapped))


@pytest.mark.parametrize("loader", ["from_hparams", "from_onnx"])
def test_swapped_labels_in_hyperparams_are_refused_naming_the_file(
    loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    swap_two_labels(folder / "hyperparams.yaml")
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    message = one_line(raised.value)
    assert message.startswith(f"{folder / 'hyperparams.yaml'}: missing or ")


@pytest.mark.parametrize(
    "name, loader",
    [
        ("labels.txt", "from_hparams"),
        ("labels.txt", "from_onnx"),
        ("system.ckpt", "from_hparams"),
        ("encoders/text/tokenizer_config.json", "from_hparams"),
        ("onnx/onnx_info.json", "from_onnx"),
        ("onnx/tokenizer/tokenizer_config.json", "from_onnx"),
    ],
)
def test_a_changed_file_a_loader_reads_is_refused_naming_it(
    name, loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    with open(folder / name, "ab") as fout:
        fout.write(b"\n")
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    assert one_line(raised.value).startswith(f"{folder / name}: missing or ")


@pytest.mark.parametrize("loader", ["from_hparams", "from_onnx"])
def test_a_deleted_file_a_loader_reads_is_refused_naming_it(
    loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    (folder / "labels.txt").unlink()
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    assert one_line(raised.value).startswith(f"{folder / 'labels.txt'}: ")


@pytest.mark.parametrize("loader", ["from_hparams", "from_onnx"])
def test_an_edited_export_info_is_refused_naming_it(
    loader, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    info = json.loads((folder / "export_info.json").read_text())
    info["validation"]["score"] = 0.99  # a better score, by hand
    (folder / "export_info.json").write_text(json.dumps(info))
    with pytest.raises(LOAD_ERRORS) as raised:
        load(loader, folder)
    message = one_line(raised.value)
    assert message.startswith(f"{folder / 'export_info.json'}: changed")


def test_a_labels_file_that_disagrees_with_the_model_is_refused(
    model, tmp_path
):
    folder = copy_of(model, tmp_path)
    labels = folder / "labels.txt"
    labels.write_text("hap\nneu\nsad\nang\n")
    record_digests(folder)  # signed again: still not the model's order
    with pytest.raises(ExportLoadError) as raised:
        MultimodalEmotionRecognizer.from_hparams(folder)
    message = one_line(raised.value)
    assert message.startswith(f"{labels}: ")
    assert "model_config" in message


def test_a_file_added_to_an_encoder_folder_is_refused_naming_it(
    onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    added = folder / "encoders" / "text" / "added_tokens.json"
    added.write_text('{"[NEW]": 9999}')
    with pytest.raises(ExportLoadError) as raised:
        MultimodalEmotionRecognizer.from_hparams(folder)
    message = one_line(raised.value)
    assert message.startswith(f"{added}: not covered by the digests")


def test_an_edited_model_card_still_loads(model, tmp_path):
    folder = copy_of(model, tmp_path)
    with open(folder / "README.md", "a") as fout:
        fout.write("\nEdited on the hub.\n")
    recognizer = MultimodalEmotionRecognizer.from_hparams(folder)
    assert recognizer.labels == ["neu", "hap", "sad", "ang"]


# ##### 11: no code runs from a model folder without trust #####

EVIL = {
    "apply": "\nevil: !apply:os.system ['touch {marker}']\n",
    "python-tag": "\nevil: !!python/object/apply:os.system "
    "['touch {marker}']\n",
    "tagged-key": "\n? !apply:os.system ['touch {marker}']\n: 1\n",
    "tag-directive": "%TAG !p! tag:yaml.org,2002:python/\n---\n{text}"
    "evil: !p!object/apply:os.system ['touch {marker}']\n",
}


def plant(folder, form, marker):
    """Writes a command into the export's YAML and signs it again (an
    attacker can)."""
    hparams = folder / "hyperparams.yaml"
    text = hparams.read_text()
    code = EVIL[form].format(marker=marker, text=text)
    hparams.write_text(code if form == "tag-directive" else text + code)
    record_digests(folder)


@pytest.mark.parametrize("form", sorted(EVIL))
def test_a_command_in_an_export_yaml_does_not_run_without_trust(
    form, model, tmp_path
):
    folder = copy_of(model, tmp_path)
    marker = tmp_path / "pwned"
    plant(folder, form, marker)
    with pytest.raises(ExportLoadError) as raised:
        MultimodalEmotionRecognizer.from_hparams(folder)
    message = one_line(raised.value)
    assert message.startswith(f"{folder / 'hyperparams.yaml'}: ")
    assert "trust_remote_code" in message
    assert not marker.exists()


def test_predict_runs_a_command_in_an_export_yaml_only_with_trust(
    model, tmp_path, capsys
):
    folder = copy_of(model, tmp_path)
    marker = tmp_path / "pwned"
    plant(folder, "apply", marker)
    line = predict_error(capsys, "--model", str(folder))
    assert "evil: !apply:os.system" in line and "--trust_remote_code" in line
    assert not marker.exists()
    args = ["predict", "--model", str(folder), "--text", "Yeah."]
    assert mtmm([*args, "--trust_remote_code"]) == 0
    assert marker.exists()


def test_from_hparams_runs_a_command_in_an_export_yaml_only_with_trust(
    model, tmp_path
):
    folder = copy_of(model, tmp_path)
    marker = tmp_path / "pwned"
    plant(folder, "apply", marker)
    MultimodalEmotionRecognizer.from_hparams(folder, trust_remote_code=True)
    assert marker.exists()


# ##### 21: a malformed onnx_info.json #####


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda info: info.pop("feature_sizes"), "feature_sizes: missing"),
        (
            lambda info: info.__setitem__("sha256", ["x"]),
            "sha256: a list, expected a mapping",
        ),
        (
            lambda info: info["feature_sizes"].__setitem__("audio", "16"),
            "feature_sizes.audio: a str, expected a positive integer",
        ),
        (lambda info: info.pop("format"), "format: missing"),
    ],
    ids=["missing-key", "sha256-list", "size-str", "no-format"],
)
def test_a_malformed_onnx_info_is_refused_naming_the_key(
    change, expected, onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    path = folder / "onnx" / "onnx_info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))
    record_digests(folder)  # signed again: the schema is still checked
    with pytest.raises(OnnxBackendError) as raised:
        MultimodalEmotionRecognizer.from_onnx(folder)
    message = one_line(raised.value)
    assert message.startswith(f"{path}: {expected}")
    assert "export the model again" in message


def test_an_onnx_info_that_is_not_json_is_refused_naming_it(
    onnx_model, tmp_path
):
    folder = copy_of(onnx_model, tmp_path)
    path = folder / "onnx" / "onnx_info.json"
    path.write_text("{not json")
    record_digests(folder)
    with pytest.raises(OnnxBackendError) as raised:
        MultimodalEmotionRecognizer.from_onnx(folder)
    assert one_line(raised.value).startswith(f"{path}: not valid JSON")
