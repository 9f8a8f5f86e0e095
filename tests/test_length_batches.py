"""--task sentence_prediction_by_length (amos_fairseq/tasks/sentence_prediction_by_length.py):
the same training examples as fairseq's sentence_prediction, each once per epoch, in batches
of similar length (far less padding), the batch order still shuffled; other splits as before."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import amos_fairseq  # noqa: F401  (registers the task)
from conftest import ROOT
from fake_glue import make_fake_glue

spec = importlib.util.spec_from_file_location("glue_script", ROOT / "scripts" / "glue.py")
glue = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue)


@pytest.fixture(scope="module")
def stsb_data(tiny_corpus, tmp_path_factory):
    """A fake STS-B (sentence pairs of varied length) encoded as glue.py encodes it."""
    out = tmp_path_factory.mktemp("by_length")
    folder = make_fake_glue(out / "glue", rows=300, dev_rows=40, test_rows=8, tasks=("STS-B",))
    rows = glue.read_task(glue.TASKS["STS-B"], str(folder / "STS-B"))
    data = out / "data"
    meta = glue.prepare_task(glue.TASKS["STS-B"], rows, str(tiny_corpus), str(data))
    return data, meta


def load(task_name, data, meta, split):
    hp = glue.load_hparams()["electra-small", "STS-B"]
    cmd = glue.finetune_command(str(data), meta, hp, "unused", 1, "electra_tiny", 128, None)
    cmd[cmd.index("--task") + 1] = task_name
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, cmd[cmd.index("fairseq_cli.train") + 1:])
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset(split)
    return task, task.dataset(split)


def epoch_batches(task, dataset, epoch, batch_size=16):
    iterator = task.get_batch_iterator(dataset, max_sentences=batch_size, seed=1, max_positions=128)
    batches = None
    for _ in range(epoch):
        batches = [(b["id"].tolist(), b["net_input"]["src_tokens"]) for b in iterator.next_epoch_itr(shuffle=True)]
    return batches


def padding_fraction(batches, pad):
    total = sum(x.numel() for _, x in batches)
    return sum((x == pad).sum().item() for _, x in batches) / total


def test_same_examples_less_padding_shuffled_batches(stsb_data):
    data, meta = stsb_data
    plain_task, plain = load("sentence_prediction", data, meta, "train")
    task, by_length = load("sentence_prediction_by_length", data, meta, "train")
    pad = task.source_dictionary.pad()
    plain_batches, batches = epoch_batches(plain_task, plain, 1), epoch_batches(task, by_length, 1)
    ids = sorted(i for b, _ in batches for i in b)
    assert ids == list(range(len(plain))) == sorted(i for b, _ in plain_batches for i in b)
    # The same example behind each id.
    for i in (0, 7, len(plain) - 1):
        assert torch.equal(plain[i]["net_input.src_tokens"], by_length[i]["net_input.src_tokens"])
    lengths = np.asarray(by_length.dataset.sizes[0])
    assert lengths.max() > 2 * lengths.min()  # lengths vary, so order matters
    plain_pad, pad_frac = padding_fraction(plain_batches, pad), padding_fraction(batches, pad)
    assert pad_frac < 0.5 * plain_pad and pad_frac < 0.1, (pad_frac, plain_pad)
    # Batches are not handed out shortest first: their order is shuffled.
    longest = [x.size(1) for _, x in batches]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_validation_order_is_sentence_predictions(stsb_data):
    data, meta = stsb_data
    _, plain = load("sentence_prediction", data, meta, "valid")
    _, by_length = load("sentence_prediction_by_length", data, meta, "valid")
    assert list(plain.ordered_indices()) == list(by_length.ordered_indices())
