"""scripts/replacement_hardness.py: one fixed discriminator, several samplers, paired masks."""

import json
import subprocess
import sys

import pytest

from conftest import ONE_THREAD, ROOT, fairseq_train

SCRIPT = ROOT / "scripts" / "replacement_hardness.py"


def hardness_table(checkpoint, data_bin, tmp_path, passes=2):
    out = tmp_path / "hardness.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(checkpoint), str(data_bin), "--subset", "train",
         "--passes", str(passes), "--threads", "1", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return json.loads(out.read_text())["samplers"]


def test_amos_samplers_share_masks_and_the_deepest_depth_is_the_generator(data_bin, tmp_path):
    save = tmp_path / "amos"
    fairseq_train(data_bin, save, "--arch", "amos_tiny", "--criterion", "amos", "--generator-depths", "1,2",
                  "--max-update", "8", env=ONE_THREAD)
    rows = hardness_table(save / "checkpoint_last.pt", data_bin, tmp_path)
    assert set(rows) == {"generator", "mixture", "uniform", "depth1", "depth2"}
    # The deepest depth alone is ELECTRA's sampler: same masks and seeds give the same draws.
    assert rows["depth2"] == rows["generator"]
    # Different samplers draw different tokens on the same masked positions.
    assert rows["depth1"]["prob_error_replaced"] != rows["depth2"]["prob_error_replaced"]
    for row in rows.values():
        assert 0.0 < row["replace_rate"] <= 1.0
        assert 0.0 <= row["error_replaced"] <= 1.0 and 0.0 < row["prob_error_replaced"] < 1.0
        assert row["replaced_tokens_per_pass"] > 100


def test_focal_hardness_proposal_reports_its_importance_weights(data_bin, tmp_path):
    save = tmp_path / "focal"
    fairseq_train(data_bin, save, "--arch", "electra_tiny", "--criterion", "focal_hardness",
                  "--hardness-alpha", "2", "--max-update", "8", env=ONE_THREAD)
    rows = hardness_table(save / "checkpoint_last.pt", data_bin, tmp_path)
    assert set(rows) == {"generator", "hardness (alpha 2)"}
    hardness = rows["hardness (alpha 2)"]
    assert 0.0 < hardness["iw_ess"] <= 1.0
    assert "iw_ess" not in rows["generator"]
    assert hardness["prob_error_replaced"] != rows["generator"]["prob_error_replaced"]


def test_a_missing_checkpoint_is_refused(tmp_path):
    missing = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "none.pt"), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
    )
    assert missing.returncode != 0 and "does not exist" in missing.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
