"""The benchmark harness on the tiniest setting (every configuration runs, ratios come from
the same run), its measuring helpers, and the model's relaxed-embedding shortcut."""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import run as bench  # noqa: E402
from benchmarks.batches import make_batch  # noqa: E402
from benchmarks.worker import count_flops  # noqa: E402


def test_synthetic_batch_masks_exactly_mask_prob_of_words_and_never_specials():
    tokens, selected = make_batch(batch=4, length=50, vocab_size=300, mask_prob=0.2, seed=3)
    assert tokens.shape == selected.shape == (4, 50)
    assert (tokens[:, 0] == 0).all() and (tokens[:, -1] == 2).all()
    assert not selected[:, 0].any() and not selected[:, -1].any()
    assert selected.sum(1).tolist() == [round(0.2 * 48)] * 4
    words = tokens[:, 1:-1]
    assert words.min() >= 4 and words.max() <= 300 - 2  # never a special or <mask>
    # Zipf-like: the most frequent word is far more common than the median one.
    counts = torch.bincount(words.flatten(), minlength=300)
    assert counts[4] > 5 * counts[150]


def test_flop_counter_counts_a_linear_layer_forward_and_backward():
    layer = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)

    def step():
        layer(x).sum().backward()

    forward = 2 * 4 * 16 * 8
    # backward: the input's and the weight's gradients, one product each
    assert count_flops(step) == 3 * forward


def test_harness_runs_every_configuration_and_takes_ratios_from_the_same_run(tmp_path):
    out = tmp_path / "tiny"
    bench.main(["--size", "tiny", "--batch", "2x16", "--steps", "2", "--warmup", "1", "--vocab-size", "200",
                "--mask-probs", "0.15,0.3", "--threads", "1", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert {"settings", "machine", "results", "ratios", "labels"} <= set(report)
    assert report["settings"]["batch"] == 2 and report["settings"]["length"] == 16
    results = report["results"]
    expected = {"electra", "focal_hardness", "amos", "electra_d3", "masked_lm", "hf_electra",
                "hf_electra_stock", "amos_mp0.3", "matmul"}
    assert set(results) == expected
    for name, r in results.items():
        assert "error" not in r and "skipped" not in r, (name, r.get("error") or r.get("skipped"))
        if name == "matmul":
            assert r["matmul_flops"] > 1e8
            continue
        for key in ("step_time_s", "tokens_per_s", "peak_mem_mb", "step_flops", "achieved_flops",
                    "matmul_flops", "matmul_share", "parameters", "step_times"):
            assert key in r, (name, key)
        assert len(r["step_times"]) == 2
        assert abs(r["tokens_per_s"] * r["step_time_s"] - 32) < 1e-6
        # A training step does at least 6 FLOPs per weight per token; the count must be of
        # that order, not zero or off by orders of magnitude.
        assert 1e5 < r["step_flops"] < 1e10, name
        assert 0 < r["matmul_share"] < 1, name
    ratios = report["ratios"]
    step = {name: r.get("step_time_s") for name, r in results.items()}
    assert ratios["electra_vs_hf_electra"]["step_time"] == step["electra"] / step["hf_electra"]
    assert ratios["electra_vs_hf_electra_stock"]["step_time"] == step["electra"] / step["hf_electra_stock"]
    assert ratios["amos_vs_electra_d3"]["step_time"] == step["amos"] / step["electra_d3"]
    assert ratios["focal_hardness_vs_electra"]["step_time"] == step["focal_hardness"] / step["electra"]
    assert ratios["amos_mask_prob_curve_step_time"]["0.3"] == step["amos_mp0.3"] / step["amos"]
    # the masked-positions-only peer computes fewer vocabulary logits than the stock call
    assert results["hf_electra"]["step_flops"] < results["hf_electra_stock"]["step_flops"]
    table = out.with_suffix(".md").read_text()
    for name in expected:
        assert f"| {name} |" in table, name


def test_relaxed_embedding_shortcut_matches_the_written_out_sum():
    """The model's shortcut for E[token] + relaxed @ E at masked positions gives the same
    value and the same gradients as the product written out (relaxed is zero in value)."""
    from amos_fairseq.modules.straight_through import add_relaxed_embedding

    torch.manual_seed(0)
    table = torch.randn(11, 6, requires_grad=True)
    tokens = torch.randint(0, 11, (2, 5))
    masked = torch.tensor([[0, 1, 0, 1, 1], [1, 0, 0, 0, 1]], dtype=torch.bool)
    logits = torch.randn(int(masked.sum()), 11, requires_grad=True)
    upstream = torch.randn(2, 5, 6)

    def run(shortcut):
        soft = torch.softmax(logits / 0.3, -1)
        relaxed = soft - soft.detach()
        embeds = F.embedding(tokens, table)
        if shortcut:
            out = add_relaxed_embedding(embeds, relaxed, table, masked.flatten().nonzero().squeeze(-1))
        else:
            out = embeds.clone()
            out[masked] = out[masked] + relaxed @ table
        (out * upstream).sum().backward()
        grads = logits.grad.clone(), table.grad.clone()
        logits.grad = table.grad = None
        return out.detach(), grads

    value, (g_logits, g_table) = run(True)
    ref_value, (ref_logits, ref_table) = run(False)
    assert torch.equal(value, ref_value)
    assert g_logits.abs().sum() > 0
    torch.testing.assert_close(g_logits, ref_logits)
    torch.testing.assert_close(g_table, ref_table)
