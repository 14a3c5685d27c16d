"""AtomicCheckpointer: interrupted saves and deletions never break resume."""

import torch

from speechbrain_mtmm.training.checkpoints import (
    STAGING_PREFIX,
    AtomicCheckpointer,
)


def make(folder):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    optimizer = torch.optim.Adam(model.parameters())
    return model, AtomicCheckpointer(
        folder, {"model": model, "optimizer": optimizer}
    )


def test_an_interrupted_save_is_invisible_and_cleaned_up(tmp_path):
    model, ckpt = make(tmp_path)
    good = ckpt.save_checkpoint(meta={"step": 1})
    # what a kill during the next save leaves behind
    staged = tmp_path / f"{STAGING_PREFIX}CKPT+2099-01-01+00-00-00+00"
    staged.mkdir()
    (staged / "CKPT.yaml").write_text("unixtime: 9999999999\n")
    (staged / "model.ckpt").write_bytes(b"truncated")
    assert [c.path for c in ckpt.list_checkpoints()] == [good.path]
    _, fresh = make(tmp_path)
    assert not staged.exists()
    assert fresh.recover_if_possible().path == good.path


def test_a_half_deleted_checkpoint_is_skipped_on_recovery(tmp_path):
    model, ckpt = make(tmp_path)
    older = ckpt.save_checkpoint(meta={"step": 1})
    with torch.no_grad():
        model.weight.add_(1.0)
    newer = ckpt.save_checkpoint(meta={"step": 2})
    (newer.path / "optimizer.ckpt").unlink()  # rmtree killed half-way
    restored, fresh = make(tmp_path)
    assert fresh.recover_if_possible().path == older.path
    torch.testing.assert_close(
        restored.weight, torch.load(older.paramfiles["model"])["weight"]
    )


def test_saving_a_custom_name_twice_replaces_it(tmp_path):
    model, ckpt = make(tmp_path)
    ckpt.save_checkpoint(name="best", meta={"v": 1})
    again = ckpt.save_checkpoint(name="best", meta={"v": 2})
    listed = ckpt.list_checkpoints()
    assert len(listed) == 1 and listed[0].meta["v"] == 2
    assert again.path.name == "CKPT+best"
