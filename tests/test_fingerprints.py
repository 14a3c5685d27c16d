"""Encoder fingerprints kept by file identity (issue 27): computed once per
folder of weight files, computed again when a file or a weight changes."""

import hashlib
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechbrain_mtmm.encoders import base, build_encoder
from speechbrain_mtmm.encoders.fingerprints import STORE_VARIABLE


def reference_fingerprint(encoder):
    """The fingerprint as defined before it was kept: a SHA-256 over the
    class, config, preprocessing and every tensor's bytes."""
    digest = hashlib.sha256()
    for text in (
        f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        json.dumps(encoder._config(), sort_keys=True, default=str),
        json.dumps(encoder._preprocessing(), sort_keys=True, default=str),
    ):
        digest.update(text.encode("utf-8") + b"\0")
    for name, tensor in encoder.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        header = f"{name}:{tensor.dtype}:{tuple(tensor.shape)}"
        digest.update(header.encode("utf-8") + b"\0")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@pytest.fixture
def hubert(tiny_hf_encoders, tmp_path, monkeypatch):
    """A private copy of the tiny HuBERT folder, a private store, and a
    counter of the weight hashes done."""
    folder = tmp_path / "hubert"
    shutil.copytree(tiny_hf_encoders[0], folder)
    monkeypatch.setenv(STORE_VARIABLE, str(tmp_path / "fingerprints.json"))
    hashed = []
    original = base.add_state_dict

    def counting(digest, state_dict):
        """Counts, then hashes."""
        hashed.append(len(state_dict))
        original(digest, state_dict)

    monkeypatch.setattr(base, "add_state_dict", counting)
    return folder, hashed


def load(folder):
    """A frozen HF audio encoder from a folder."""
    return build_encoder("audio", str(folder), freeze="frozen")


def test_an_unchanged_folder_is_hashed_once_across_loads(hubert):
    folder, hashed = hubert
    first = load(folder).fingerprint()
    again = load(folder)  # as a later run would load it
    assert again.fingerprint() == first == reference_fingerprint(again)
    assert len(hashed) == 1


def test_a_rewritten_weight_file_changes_the_fingerprint(hubert):
    folder, hashed = hubert
    before = load(folder).fingerprint()
    weights = load_file(folder / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    changed = load(folder)
    assert changed.fingerprint() == reference_fingerprint(changed) != before
    assert len(hashed) == 2


def test_a_touched_file_is_hashed_again_to_the_same_fingerprint(hubert):
    folder, hashed = hubert
    before = load(folder).fingerprint()
    path = folder / "model.safetensors"
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load(folder).fingerprint() == before
    assert len(hashed) == 2


def test_a_weight_changed_in_memory_changes_the_fingerprint(hubert):
    folder, hashed = hubert
    encoder = load(folder)
    before = encoder.fingerprint()
    with torch.no_grad():
        next(encoder.parameters()).add_(1.0)
    assert encoder.fingerprint() == reference_fingerprint(encoder) != before
    # and the changed weights were not stored as the folder's
    assert load(folder).fingerprint() == before


def test_the_fingerprint_is_kept_in_memory_while_no_tensor_changes(
    hubert, monkeypatch
):
    folder, hashed = hubert
    monkeypatch.setenv(STORE_VARIABLE, "off")
    encoder = load(folder)
    first = encoder.fingerprint()
    assert encoder.fingerprint() == first == reference_fingerprint(encoder)
    assert len(hashed) == 1
