"""Bad input stops with one clear message naming the flag and the fix, and nothing already
written (an existing checkpoint) is touched."""

import hashlib
import shutil

import pytest
import torch

from conftest import ROOT, TINY_TRAIN_ARGS, fairseq_train


def run_in_process(data, save_dir, *args):
    """fairseq-train's own main, in this process (saves ~10 s of imports per case)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train

    parser = options.get_training_parser()
    argv = [str(data), "--save-dir", str(save_dir), *TINY_TRAIN_ARGS, "--max-update", "1", *map(str, args)]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, input_args=argv))
    train.main(cfg)


@pytest.fixture
def save_dir_with_checkpoint(tmp_path):
    save = tmp_path / "ckpt"
    save.mkdir()
    ckpt = save / "checkpoint_last.pt"
    ckpt.write_bytes(b"an earlier run's checkpoint")
    yield save
    assert ckpt.read_bytes() == b"an earlier run's checkpoint", "an existing checkpoint was modified"
    assert sorted(p.name for p in save.iterdir()) == ["checkpoint_last.pt"]


def sha(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mismatched_data(data_bin, tmp_path_factory):
    """The tiny corpus with a dictionary cut to 100 entries: ids beyond it in the data."""
    bad = tmp_path_factory.mktemp("mismatch") / "data-bin"
    shutil.copytree(data_bin, bad)
    lines = (bad / "dict.txt").read_text(encoding="utf-8").splitlines()[:100]
    (bad / "dict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


CASES = {
    "missing data dir": (lambda d, t: t / "no-such-dir", [], "does not exist: pass the --destdir"),
    "empty data dir": (lambda d, t: (t / "empty").mkdir() or t / "empty", [], "has no dict.txt"),
    "tokens beyond positions": (lambda d, t: d, ["--tokens-per-sample", "600"],
                                "--tokens-per-sample 600 is longer than the model's --max-positions 512"),
    "depth beyond generator": (lambda d, t: d, ["--generator-depths", "1,4", "--generator-layers", "3"],
                               "asks for depth 4 but --generator-layers is 3"),
    "missing restore file": (lambda d, t: d, ["--restore-file", "/no/such/checkpoint_best.pt"],
                             "--restore-file /no/such/checkpoint_best.pt does not exist"),
    "bf16 without torch_xla": (lambda d, t: d, ["--bf16"], "--bf16 in fairseq 0.12 means TPU training"),
    "fp16 without a GPU": (lambda d, t: d, ["--fp16"], "--fp16 needs a CUDA GPU and this machine has none"),
    "empty depth list": (lambda d, t: d, ["--generator-depths", ","], "--generator-depths is empty"),
    "mask prob zero": (lambda d, t: d, ["--mask-prob", "0"], "--mask-prob must lie in (0, 1)"),
    "mask prob one": (lambda d, t: d, ["--mask-prob", "1.2"], "--mask-prob must lie in (0, 1)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_message(case, data_bin, tmp_path, save_dir_with_checkpoint):
    make_data, extra, message = CASES[case]
    if "GPU" in case and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --fp16 is valid here")
    data = make_data(data_bin, tmp_path)
    with pytest.raises(ValueError) as err:
        run_in_process(data, save_dir_with_checkpoint, "--arch", "amos_tiny", "--criterion", "electra", *extra)
    assert message in str(err.value)


def test_dictionary_data_mismatch(mismatched_data, save_dir_with_checkpoint):
    with pytest.raises(ValueError) as err:
        run_in_process(mismatched_data, save_dir_with_checkpoint, "--arch", "electra_tiny", "--criterion", "electra")
    assert "binarized with another dictionary" in str(err.value)
    assert "--srcdict" in str(err.value)


def test_data_shards_with_different_dictionaries(data_bin, mismatched_data, save_dir_with_checkpoint):
    with pytest.raises(ValueError) as err:
        run_in_process(f"{data_bin}:{mismatched_data}", save_dir_with_checkpoint,
                       "--arch", "electra_tiny", "--criterion", "electra")
    assert f"{mismatched_data}/dict.txt differs from {data_bin}/dict.txt" in str(err.value)
    assert "--srcdict" in str(err.value)


def test_message_reaches_the_cli_user(data_bin, save_dir_with_checkpoint):
    """Through the real command: non-zero exit and the message as the last error line."""
    before = sha(save_dir_with_checkpoint / "checkpoint_last.pt")
    proc = fairseq_train(data_bin, save_dir_with_checkpoint, "--arch", "electra_tiny", "--criterion", "electra",
                         "--generator-depths", "3", "--generator-layers", "2", "--max-update", "1", check=False)
    assert proc.returncode != 0
    last = [l for l in proc.stdout.strip().splitlines() if l.strip()][-1]
    assert "ModelConfigError" in last and "asks for depth 3 but --generator-layers is 2" in last, last
    assert sha(save_dir_with_checkpoint / "checkpoint_last.pt") == before


@pytest.mark.parametrize("case", ["fp16 without a GPU", "truncated restore file", "shards"])
def test_more_messages_through_the_cli(case, data_bin, mismatched_data, save_dir_with_checkpoint, tmp_path):
    if case == "fp16 without a GPU" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --fp16 is valid here")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((save_dir_with_checkpoint / "checkpoint_last.pt").read_bytes() * 50)  # not a zip
    data, extra, message = {
        "fp16 without a GPU": (data_bin, ["--fp16"], "--fp16 needs a CUDA GPU"),
        "truncated restore file": (data_bin, ["--restore-file", cut], f"--restore-file {cut} is not a complete checkpoint"),
        "shards": (f"{data_bin}:{mismatched_data}", [], "differs from"),
    }[case]
    proc = fairseq_train(data, save_dir_with_checkpoint, "--arch", "electra_tiny", "--criterion", "electra",
                         "--max-update", "1", *extra, check=False)
    assert proc.returncode != 0
    last = [l for l in proc.stdout.strip().splitlines() if l.strip()][-1]
    assert message in last, last
