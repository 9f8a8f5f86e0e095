"""A checkpoint loads wherever the code runs: one trained with --fp16 on a GPU cluster, or a
fine-tuned one whose --restore-file has since moved, is rebuilt, exported, fine-tuned and
scored on a machine without CUDA. Flags that judge a training run are checked only when a
run starts."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ONE_THREAD, ROOT, fairseq_train
from fake_glue import make_fake_glue

sys.path.insert(0, str(ROOT))
from benchmarks.gpu_check import as_saved_by_a_gpu_run  # noqa: E402  (the GPU check's rewrite, too)

# What is tested is a machine without CUDA (where --fp16 must stop a new run).
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

spec = importlib.util.spec_from_file_location("glue_script", ROOT / "scripts" / "glue.py")
glue = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue)


@pytest.fixture(scope="module")
def fp16_checkpoint(data_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("fp16_ckpt")
    fairseq_train(data_bin, save, "--arch", "electra_tiny", "--criterion", "electra",
                  "--max-update", "3", "--total-num-update", "3", env=ONE_THREAD)
    as_saved_by_a_gpu_run(save / "checkpoint_last.pt", save / "gpu_fp16.pt")
    return save / "gpu_fp16.pt"


def test_fp16_pretraining_checkpoint_loads_through_fairseq(fp16_checkpoint, data_bin):
    from fairseq import checkpoint_utils

    import amos_fairseq  # noqa: F401

    (model,), cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(fp16_checkpoint)], arg_overrides={"data": str(data_bin)})
    assert cfg.common.fp16 and cfg.model.fp16  # the saved config still says so
    saved = torch.load(fp16_checkpoint, map_location="cpu", weights_only=False)["model"]
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, saved[name].float(), rtol=0, atol=0)
    tokens = torch.tensor([[0, 10, 11, 12, 2]])
    features, _ = model(tokens, features_only=True)
    assert torch.isfinite(features).all()


def test_fp16_pretraining_checkpoint_exports(fp16_checkpoint, data_bin, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_hf.py"), str(fp16_checkpoint), "--out",
         str(tmp_path / "hf"), "--data", str(data_bin)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
        env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD},
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert re.search(r"\[verify\] max \|hf - fairseq\| discriminator_rtd_logits", proc.stdout)


def test_fp16_checkpoint_fine_tunes_and_its_fine_tuned_copy_predicts_elsewhere(
        fp16_checkpoint, tiny_corpus, tmp_path, monkeypatch):
    """glue.py fine-tunes from the fp16 checkpoint and scores its dev set; the fine-tuned
    checkpoint, saved as a GPU run would save it and with its --restore-file gone, still
    predicts (the step that rebuilds the model from the saved config)."""
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    pretrained = tmp_path / "pretrained.pt"
    shutil.copy(fp16_checkpoint, pretrained)
    glue_dir = make_fake_glue(tmp_path / "glue", rows=32, dev_rows=8, test_rows=4, tasks=("SST-2",))
    work = tmp_path / "work"
    cfg = glue.RunConfig(str(pretrained), str(tiny_corpus), str(glue_dir), str(work), seeds=[1],
                         keep_checkpoints=True, extra=["--max-update", "2"])
    rows = glue.run(cfg)["rows"]
    assert rows[0]["task"] == "SST-2" and 0 <= rows[0]["metrics"]["accuracy"] <= 100

    fine_tuned = work / "SST-2" / "seed1" / "checkpoints" / "checkpoint_last.pt"
    state = torch.load(fine_tuned, map_location="cpu", weights_only=False)
    assert state["cfg"]["checkpoint"]["restore_file"] == str(pretrained)
    moved = tmp_path / "fine_tuned_fp16.pt"
    as_saved_by_a_gpu_run(fine_tuned, moved)
    pretrained.unlink()  # the file named by the saved --restore-file is gone
    data = work / "SST-2" / "data"
    assert (data / "input0").is_dir()
    preds = glue.predict(str(data), str(moved), ["valid"])["valid"]
    assert len(preds) == 8 and set(preds) <= {"0", "1"}


def test_a_new_run_still_checks_its_flags(fp16_checkpoint, data_bin, tmp_path):
    """The saved model loads anywhere, but a run started with --fp16 here, or fine-tuning from
    a --restore-file that is gone, stops before it starts."""
    proc = fairseq_train(data_bin, tmp_path / "a", "--arch", "electra_tiny", "--criterion", "electra",
                         "--max-update", "1", "--fp16", check=False, env=ONE_THREAD)
    assert proc.returncode != 0 and "--fp16 needs a CUDA GPU and this machine has none" in proc.stdout
    proc = fairseq_train(data_bin, tmp_path / "b", "--arch", "electra_tiny", "--criterion", "electra",
                         "--max-update", "1", "--restore-file", str(tmp_path / "gone.pt"), check=False,
                         env=ONE_THREAD)
    assert proc.returncode != 0 and f"--restore-file {tmp_path / 'gone.pt'} does not exist" in proc.stdout
    assert not (tmp_path / "b" / "checkpoint_last.pt").exists()
