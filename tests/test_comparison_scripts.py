"""The scripts behind examples/compare.sh and the quickstart's summary: the context-free
baselines of scripts/pretraining_summary.py, the MLM-only checkpoint conversion, and the
results table with its spread."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, build_model


def run_script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))


def fake_log(path, valid):
    body = " | ".join(f"{k} {v}" for k, v in valid.items())
    path.write_text(
        "2026-01-01 00:00:00 | INFO | train_inner | epoch 001:  10 / 20 gen_loss=9.0, rtd_loss=0.9, num_updates=10\n"
        f"2026-01-01 00:00:01 | INFO | valid | epoch 001 | valid on 'valid' subset | {body}\n",
        encoding="utf-8")
    return path


def unigram_by_hand(data_bin):
    from fairseq.data import Dictionary, data_utils

    d = Dictionary.load(str(data_bin / "dict.txt"))
    counts = {}
    for split in ("train", "valid"):
        ds = data_utils.load_indexed_dataset(str(data_bin / split), d)
        c = np.zeros(len(d))
        for i in range(len(ds)):
            for t in ds[i].tolist():
                if t >= d.nspecial:
                    c[t] += 1
        counts[split] = c
    p = (counts["train"] + 1) / (counts["train"] + 1)[d.nspecial:].sum()
    valid = counts["valid"]
    return float(-(valid[d.nspecial:] * np.log(p[d.nspecial:])).sum() / valid.sum()), \
        float(valid[int(counts["train"].argmax())] / valid.sum())


@pytest.mark.parametrize("gen_loss, rtd_loss, caught, verdict", [
    (3.0, 0.30, 0.4, "both networks use the context"),
    (3.0, 0.41, 0.0, "the discriminator is still at its label prior"),
    (3.0, 0.40, 0.0, "the discriminator is only starting: its loss is 0.0100 below the prior"),
    (None, 0.41, 0.0, "NOTHING LEARNED YET"),
])
def test_pretraining_summary_compares_with_context_free_baselines(data_bin, tmp_path, gen_loss, rtd_loss, caught, verdict):
    unigram, top = unigram_by_hand(data_bin)
    gen_loss = unigram if gen_loss is None else gen_loss
    log = fake_log(tmp_path / "train.log", dict(gen_loss=gen_loss, rtd_loss=rtd_loss, gen_acc=0.2,
                   rtd_prior_loss=0.41, rtd_acc_replaced=caught, rtd_acc_original=0.97, num_updates=20))
    proc = run_script("pretraining_summary.py", data_bin, log, "--json", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stdout
    assert verdict in proc.stdout and "valid, update 20" in proc.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["unigram_loss"] == pytest.approx(unigram, rel=1e-6)
    assert summary["unigram_acc"] == pytest.approx(top, rel=1e-6)
    assert 3.0 < unigram < np.log(800)  # a real corpus is far from uniform over its 800 pieces


def test_pretraining_summary_does_not_call_an_mlm_only_run_collapsed(data_bin, tmp_path):
    """With --rtd-weight 0 (logged rtd_weight_effective 0) the discriminator is never trained:
    its prior-level loss is expected, not the collapse the RTD runs' verdict warns about."""
    unigram, _ = unigram_by_hand(data_bin)
    metrics = dict(gen_loss=unigram - 1.0, rtd_loss=0.41, gen_acc=0.2, rtd_prior_loss=0.41,
                   rtd_acc_replaced=0.0, rtd_acc_original=1.0, num_updates=20)
    mlm = run_script("pretraining_summary.py", data_bin, fake_log(tmp_path / "mlm.log", dict(
        metrics, rtd_weight_effective=0)), "--json", tmp_path / "mlm.json")
    rtd = run_script("pretraining_summary.py", data_bin, fake_log(tmp_path / "rtd.log", dict(
        metrics, rtd_weight_effective=51.4)), "--json", tmp_path / "rtd.json")
    assert mlm.returncode == 0 and rtd.returncode == 0, mlm.stdout + rtd.stdout
    # recorded for compare_results.py, which names collapsed discriminators from the summaries
    assert json.loads((tmp_path / "mlm.json").read_text())["rtd_trained"] is False
    assert json.loads((tmp_path / "rtd.json").read_text())["rtd_trained"] is True
    assert "an MLM-only run" in mlm.stdout and "collapsed" not in mlm.stdout
    assert "generator uses the context" in mlm.stdout
    assert "collapsed" in rtd.stdout and "MLM-only" not in rtd.stdout


def test_pretraining_summary_judges_the_deepest_generator_not_the_sum_over_depths(data_bin, tmp_path):
    """amos logs gen_loss as the sum of its depths' losses: three generators each below the
    unigram level sum to far above it, and must not read as a generator that learned nothing."""
    unigram, _ = unigram_by_hand(data_bin)
    per_depth = {1: unigram - 0.3, 2: unigram - 0.5, 3: unigram - 0.6}
    log = fake_log(tmp_path / "train.log", dict(
        gen_loss=sum(per_depth.values()), rtd_loss=0.30, gen_acc=0.2, rtd_prior_loss=0.41,
        rtd_acc_replaced=0.4, rtd_acc_original=0.97,
        **{f"gen_loss_d{d}": v for d, v in per_depth.items()}, gen_acc_d1=0.15, gen_acc_d2=0.18,
        gen_acc_d3=0.2, num_updates=20))
    proc = run_script("pretraining_summary.py", data_bin, log, "--json", tmp_path / "s.json")
    assert proc.returncode == 0 and "both networks use the context" in proc.stdout, proc.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["gen_loss"] == pytest.approx(per_depth[3], abs=1e-6) and summary["generator_depth"] == 3
    assert summary["generator_learned"] is True
    assert summary["gen_loss_per_depth"] == {str(d): pytest.approx(v, abs=1e-6) for d, v in per_depth.items()}
    assert "generator d1" in proc.stdout and "accuracy 0.150" in proc.stdout


def test_pretraining_summary_refuses_a_log_without_metrics(data_bin, tmp_path):
    log = tmp_path / "empty.log"
    log.write_text("nothing here\n")
    proc = run_script("pretraining_summary.py", data_bin, log)
    assert proc.returncode != 0 and "is it a fairseq-train log?" in proc.stdout


def test_mlm_checkpoint_becomes_the_discriminator(tmp_path):
    sized_like_discriminator = dict(generator_embed_dim=64, generator_ffn_embed_dim=256,
                                    generator_attention_heads=2, generator_depths="2")
    model, _ = build_model("electra_tiny", **sized_like_discriminator)
    state = {"model": model.state_dict(), "cfg": None}
    torch.save(state, tmp_path / "mlm.pt")
    proc = run_script("mlm_as_discriminator.py", tmp_path / "mlm.pt", tmp_path / "disc.pt")
    assert proc.returncode == 0, proc.stdout
    converted = torch.load(tmp_path / "disc.pt", weights_only=False)["model"]
    disc_keys = [k for k in converted if k.startswith("discriminator.")]
    assert disc_keys
    for key in disc_keys:
        source = state["model"]["generator.encoder." + key[len("discriminator."):]]
        assert torch.equal(converted[key], source), key
    assert not torch.equal(state["model"]["discriminator.stack.layers.0.fc1.weight"],
                           converted["discriminator.stack.layers.0.fc1.weight"])
    # a generator of another shape is refused with the flags that fix it; nothing is written
    narrow, _ = build_model("electra_tiny")
    torch.save({"model": narrow.state_dict()}, tmp_path / "narrow.pt")
    proc = run_script("mlm_as_discriminator.py", tmp_path / "narrow.pt", tmp_path / "out.pt")
    assert proc.returncode != 0 and "--generator-embed-dim" in proc.stdout
    assert not (tmp_path / "out.pt").exists()


def test_results_table_reports_mean_and_spread_per_method(tmp_path):
    scores = {"scratch": [60.0, 62.0, 64.0], "electra": [70.0, 71.0, 72.0], "amos": [68.0]}
    for method, values in scores.items():
        for seed, value in enumerate(values, 1):
            folder = tmp_path / "finetune" / method / f"seed{seed}"
            folder.mkdir(parents=True)
            # taskA has a labelled test set (test = dev - 5), taskB has none
            (folder / "results.tsv").write_text(
                "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\n"
                f"taskA\t{value}\t50.0\t10\t{value - 5}\ntaskB\t{value - 10}\t40.0\t10\tn/a\n")
    for seed, rtd_loss in ((2, 0.35), (1, 0.36)):  # one summary per pretraining seed
        folder = tmp_path / f"pretrain-electra-seed{seed}"
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(dict(
            where="valid, update 3000", gen_loss=4.5, unigram_loss=6.4, gen_acc=0.22, unigram_acc=0.05,
            rtd_loss=rtd_loss, rtd_prior_loss=0.38, rtd_acc_replaced=0.1, rtd_acc_original=0.99)))
    proc = run_script("compare_results.py", tmp_path)
    assert proc.returncode == 0, proc.stdout
    table = (tmp_path / "results" / "results.md").read_text()
    summaries = [line for line in table.splitlines() if line.startswith("| electra-seed")]
    assert [line.split(" | ")[0] for line in summaries] == ["| electra-seed1", "| electra-seed2"]
    assert "0.3600 (0.3800)" in summaries[0] and "0.3500 (0.3800)" in summaries[1]
    dev, test = table.split("Test accuracy")
    assert "| scratch | 62.0 ± 2.0 (n=3) | 52.0 ± 2.0 (n=3) | 57.0 |" in dev
    assert "| electra | 71.0 ± 1.0 (n=3) | 61.0 ± 1.0 (n=3) | 66.0 | +9.0 |" in dev
    assert "| majority class | 50.0 | 40.0 |" in dev
    assert "| amos | 68.0 (n=1) | 58.0 (n=1) | 63.0 | +6.0 |" in dev  # one seed: no spread shown
    assert "| electra | 66.0 ± 1.0 (n=3) | 66.0 | +9.0 |" in test and "taskB" not in test
    rows = (tmp_path / "results" / "results.tsv").read_text().splitlines()
    assert "electra\ttaskA\tdev\t71.00\t1.00\t3\t70.0,71.0,72.0" in rows
    assert "electra\ttaskA\ttest\t66.00\t1.00\t3\t65.0,66.0,67.0" in rows
    assert not any(row.startswith("electra\ttaskB\ttest") for row in rows)


def test_results_name_a_discriminator_that_collapsed_to_its_prior(tmp_path):
    """A trained discriminator left at its label prior is named under the pretraining table; an
    MLM-only run (rtd_trained false) and one that learned, though slowly, are not."""
    runs = {"electra-seed1": (0.3050, 0.38, 0.20, True), "electra-seed2": (0.3795, 0.38, 0.01, True),
            "focal_hardness-seed2": (0.3892, 0.3892, 0.0, True), "mlm-seed1": (0.3700, 0.3649, 0.0, False),
            "mlm-seed2": (0.3700, 0.3649, 0.0, None)}  # None: a summary written before rtd_trained
    for run, (rtd_loss, prior, caught, trained) in runs.items():
        folder = tmp_path / f"pretrain-{run}"
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(dict(
            where="valid, update 3000", gen_loss=4.5, unigram_loss=6.4, gen_acc=0.22, unigram_acc=0.05,
            rtd_loss=rtd_loss, rtd_prior_loss=prior, rtd_acc_replaced=caught, rtd_acc_original=0.99,
            **({} if trained is None else {"rtd_trained": trained}))))
    proc = run_script("compare_results.py", tmp_path)
    assert proc.returncode == 0, proc.stdout
    table = (tmp_path / "results" / "results.md").read_text()
    named = [line for line in table.splitlines() if line.startswith("Discriminator at its label prior")]
    assert len(named) == 1 and "focal_hardness-seed2." in named[0], table
    assert not any(run in named[0] for run in ("electra-seed1", "electra-seed2", "mlm-seed1", "mlm-seed2"))
    flagged = [line.split(" | ")[0] for line in table.splitlines() if "**at its prior**" in line]
    assert flagged == ["| focal_hardness-seed2"]


def test_best_epoch_picks_the_dev_maximum_and_reports_test_there(tmp_path):
    """The earliest epoch with the highest dev score; test at that epoch, not test's own best."""
    line = "2026-01-01 | INFO | {tag} | epoch 00{e} | valid on '{tag}' subset | loss 0.7 | accuracy {a} | num_updates {e}0\n"
    dev, test = [70.0, 75.5, 75.5, 74.0], [80.0, 71.0, 90.0, 95.0]
    log = tmp_path / "train.log"
    log.write_text("".join(line.format(tag="valid", e=e, a=d) + line.format(tag="test", e=e, a=t)
                           for e, (d, t) in enumerate(zip(dev, test), 1)))
    proc = run_script("best_epoch.py", log)
    assert proc.returncode == 0 and proc.stdout.split() == ["75.5", "71.0"], proc.stdout
    log.write_text("".join(line.format(tag="valid", e=e, a=d) for e, d in enumerate(dev, 1)))
    assert run_script("best_epoch.py", log).stdout.split() == ["75.5", "n/a"]
    log.write_text("no scores here\n")
    proc = run_script("best_epoch.py", log)
    assert proc.returncode == 1 and "no line with accuracy" in proc.stdout


def test_differences_carry_paired_95_percent_intervals_and_blimp_has_its_table(tmp_path):
    """electra - scratch over three paired seeds: differences 10, 9, 8 -> mean 9, std 1, half-width
    t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.484; BLiMP: discriminator minus random
    weights per pretraining seed, and amos minus electra paired by seed."""
    scores = {"scratch": [60.0, 62.0, 64.0], "electra": [70.0, 71.0, 72.0], "amos": [71.0, 71.0, 75.0]}
    for method, values in scores.items():
        for seed, value in enumerate(values, 1):
            folder = tmp_path / "finetune" / method / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "results.tsv").write_text(
                "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\n"
                f"taskA\t{value}\t50.0\t10\tn/a\n")
    blimp = {"electra": [0.50, 0.52, 0.54], "amos": [0.53, 0.52, 0.58]}
    for method, values in blimp.items():
        for seed, value in enumerate(values, 1):
            folder = tmp_path / f"pretrain-{method}-seed{seed}"
            folder.mkdir()
            accuracy = {"discriminator": value, "generator d2": 0.40, "generator d4": value + 0.1,
                        "random discriminator": 0.48, "random generator d4": 0.49, "unigram": 0.54}
            (folder / "blimp.json").write_text(json.dumps({"overall": {"accuracy": accuracy}}))
    proc = run_script("compare_results.py", tmp_path)
    assert proc.returncode == 0, proc.stdout
    table = (tmp_path / "results" / "results.md").read_text()
    assert "| electra | scratch | +9.0 [+6.5, +11.5] (n=3) | +9.0 [+6.5, +11.5] (n=3) |" in table
    # amos - electra: 1, 0, 3 -> mean 1.333, std 1.528, half-width 3.795
    assert "| amos | electra | +1.3 [-2.5, +5.1] (n=3) |" in table
    assert "| electra | 3 | 52.0 ± 2.0 | 62.0 ± 2.0 | 48.0 ± 0.0 | 49.0 ± 0.0 | 54.0 ± 0.0 |" in table  # generator: d4
    # amos disc - electra disc: 3, 0, 4 points (std 2.082, half-width 5.17); - random: 5, 4, 10
    # (std 3.215, half-width 7.99)
    assert "| amos | discriminator | +2.3 [-2.8, +7.5] (n=3) | +6.3 [-1.7, +14.3] (n=3) |" in table


def test_curve_table_reads_tokens_blimp_and_paired_gains(tmp_path):
    """scripts/curve_table.py: tokens seen from the log's wpb (a resumed run's repeated lines
    counted once), BLiMP beside its controls, and the gain over random weights per seed."""
    log = ["2026 | INFO | train_inner | epoch 001: wpb=100.0, bsz=32, num_updates=500, lr=0.001",
           "2026 | INFO | train_inner | epoch 001: wpb=120.0, bsz=32, num_updates=1000, lr=0.001",
           "2026 | INFO | train_inner | epoch 001: wpb=999.0, bsz=32, num_updates=1000, lr=0.001"]  # resumed
    (tmp_path / "run.log").write_text("\n".join(log) + "\n")
    accuracy = {"discriminator": 0.55, "generator d4": 0.6, "random discriminator": 0.48,
                "random generator d4": 0.5, "unigram": 0.54}
    (tmp_path / "eval" / "1000").mkdir(parents=True)
    (tmp_path / "eval" / "1000" / "blimp.json").write_text(json.dumps({"overall": {"accuracy": accuracy}}))
    header = "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\n"
    for seed, (pre, scratch) in enumerate([(80.0, 78.0), (82.0, 79.0), (81.0, 81.0)], 1):
        for folder, value in ((tmp_path / "eval" / "1000" / f"finetune-seed{seed}", pre),
                              (tmp_path / "eval" / "scratch" / f"finetune-seed{seed}", scratch)):
            folder.mkdir(parents=True)
            (folder / "results.tsv").write_text(header + f"taskA\t{value + 5}\t50.0\t10\t{value}\n")
    proc = run_script("curve_table.py", tmp_path)
    assert proc.returncode == 0, proc.stdout
    table = (tmp_path / "curve.md").read_text()
    # 500 x 100 + 500 x 120 = 110,000 tokens; gains 2, 3, 0 (test accuracy): mean 1.67, std 1.53
    assert "| 1000 | 0.1M | 55.0 | 60.0 | 48.0 | 50.0 | 54.0 | +1.7 [-2.1, +5.5] (n=3) |" in table


def test_results_before_any_fine_tuning_run_has_finished(tmp_path):
    """A comparison stopped after pretraining still gets its BLiMP table (and says that no
    fine-tuning run has finished); an empty folder is refused with the fix."""
    proc = run_script("compare_results.py", tmp_path)
    assert proc.returncode != 0 and "nothing finished" in proc.stdout
    folder = tmp_path / "pretrain-electra-seed1"
    folder.mkdir()
    accuracy = {"discriminator": 0.55, "generator d4": 0.51, "random discriminator": 0.50,
                "random generator d4": 0.49, "unigram": 0.49}
    (folder / "blimp.json").write_text(json.dumps({"overall": {"accuracy": accuracy}}))
    proc = run_script("compare_results.py", tmp_path)
    assert proc.returncode == 0, proc.stdout
    table = (tmp_path / "results" / "results.md").read_text()
    assert "| electra | 1 | 55.0 | 51.0 | 50.0 | 49.0 | 49.0 |" in table
    assert "Fine-tuning: no run has finished yet" in table
