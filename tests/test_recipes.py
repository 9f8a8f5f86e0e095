"""The shell recipes under examples/ never write into, or delete, a folder they did not make:
each refuses with one error line, before any work, and leaves the folder as it was."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT


def recipe(name, *args, **env):
    return subprocess.run(["bash", str(ROOT / "examples" / name), *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                          env={**os.environ, "SKIP_SETUP": "1", **env})


def users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


def untouched(folder: Path) -> bool:
    return [p.name for p in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "keep me"


def last_line(proc):
    return [line for line in proc.stdout.strip().splitlines() if line.strip()][-1]


def test_pretrain_never_prepares_data_into_a_folder_the_user_named(tmp_path):
    mine = users_folder(tmp_path)
    proc = recipe("pretrain.sh", "electra", "tiny", "cpu", DATA=str(mine), WORK=str(tmp_path / "work"))
    assert proc.returncode == 2
    assert f"DATA={mine} has no train.bin" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine) and not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", ["quickstart.sh", "compare.sh"])
def test_fresh_removes_only_the_recipes_own_folder(name, tmp_path):
    mine = users_folder(tmp_path)
    proc = recipe(name, mine, FRESH="1")
    assert proc.returncode == 2
    assert f"{mine} exists and was not made by {name[:-3]}" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine)
    proc = recipe(name, mine)  # without FRESH: not written into either
    assert proc.returncode == 2 and untouched(mine)


def test_finetune_work_folder_is_its_own(tiny_corpus, tmp_path):
    checkpoint = tmp_path / "cut.pt"
    checkpoint.write_bytes(b"PK\x03\x04 a checkpoint cut short")
    mine = users_folder(tmp_path)
    tasks = ROOT / "examples" / "data" / "source_id"
    proc = recipe("finetune_tsv.sh", checkpoint, tiny_corpus, tasks, mine)
    assert proc.returncode == 2 and "was not made by finetune_tsv" in last_line(proc), proc.stdout[-2000:]
    assert untouched(mine)
    # A new folder is claimed (marker), and a truncated checkpoint is named before any work.
    work = tmp_path / "work"
    proc = recipe("finetune_tsv.sh", checkpoint, tiny_corpus, tasks, work)
    assert proc.returncode != 0 and f"{checkpoint} is not a complete checkpoint" in last_line(proc), proc.stdout
    assert [p.name for p in work.iterdir()] == [".amos-fairseq-output"]
    assert (work / ".amos-fairseq-output").read_text().strip() == "finetune_tsv"


@pytest.mark.parametrize("env, message", [
    ({"METHODS": "electra amoss"}, "METHODS has 'amoss': choose among electra, amos, focal_hardness, mlm"),
    ({"JOBS": "0"}, "JOBS=0: give a whole number of runs at once"),
])
def test_compare_refuses_bad_settings_before_any_work(env, message, tmp_path):
    work = tmp_path / "work"
    proc = recipe("compare.sh", work, **env)
    assert proc.returncode == 2 and message in last_line(proc), proc.stdout[-2000:]
    assert not work.exists()
