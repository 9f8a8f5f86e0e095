#!/usr/bin/env python
"""SQuAD v1.1 and v2.0 with an exported discriminator (scripts/export_hf.py), offline.

    python scripts/squad.py train MODEL_DIR --train train-v2.0.json --out OUT [--dev dev-v2.0.json]
        [--version 2] [--lr 1e-4] [--epochs 2] [--batch 32] [--warmup-ratio 0.1] [--max-steps N]
    python scripts/squad.py predict MODEL_DIR --data dev-v2.0.json --out OUT [--version 2]
    python scripts/squad.py eval DATA.json PREDICTIONS.json [--na-probs null_odds.json]

``train`` fine-tunes MODEL_DIR as ``AutoModelForQuestionAnswering`` (ELECTRA-shaped exports
load as ElectraForQuestionAnswering; a remote-code export with --trust-remote-code) on a
SQuAD-format JSON file, saves the model and tokenizer to OUT/model and, with --dev, predicts
and scores the dev file. ``predict`` does the latter for a fine-tuned model. ``eval`` scores a
predictions file like the official evaluation scripts.

Preprocessing (BERT's): the question is cut to --max-query-length tokens; the context is
split into windows of at most --max-length tokens in all, each starting --doc-stride tokens
after the previous one; a training window that does not hold the whole answer (and every
window of an unanswerable question) points at the first token, ``<s>``. Character offsets
of the context's tokens come from the tokenizer (``return_offsets_mapping``) when it gives
them; the exported sentencepiece tokenizer does not, and they are then read from its
sentencepiece model, which records each piece's place in the original text.

Post-processing: per question, the --n-best highest start and end logits over the context
tokens of every window, spans of at most --max-answer-length tokens, scored by the sum of
their logits; the text is the context between the span's character offsets. For v2.0 the
null score is the ``<s>`` start+end logit (the lowest over windows): the question gets no
answer when null score - best span score > --null-threshold (0); those differences are
written to null_odds.json, and the evaluation reports the best threshold on the data.

Exact match and F1 follow the official SQuAD evaluation scripts' definitions: answers are
lower-cased, punctuation removed, the articles a/an/the removed and whitespace collapsed;
F1 is over the bags of the remaining tokens; a question scores its maximum over the gold
answers; in v2.0 an unanswerable question's gold answer is the empty string. Everything is
in % of the questions (a question without prediction scores 0).
"""

import argparse
import collections
import json
import math
import os
import random
import re
import string
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)  # output_dir, also when loaded by path
from output_dir import OutputDirError, output_dir  # noqa: E402

TOOL = "squad"


class SquadError(Exception):
    """A problem with the inputs; the message names the file (or option) and the fix."""


# --------------------------------------------------------------------------- evaluation

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, punctuation removed, articles removed, whitespace collapsed (in that order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-bag F1 of the normalised strings; when either is empty (a v2.0 no-answer), 1 if
    both are and 0 otherwise."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(example: dict) -> List[str]:
    """Gold answer texts; [''] for an unanswerable question (answers that normalise to
    nothing do not count as answers)."""
    answers = [a["text"] for a in example["answers"] if normalize_answer(a["text"])]
    return answers or [""]


def best_threshold(scores: Dict[str, float], na_probs: Dict[str, float], has_answer: Dict[str, bool],
                   preds: Dict[str, str]) -> Tuple[float, float]:
    """(best score in %, threshold) over thresholds on the no-answer scores: a question gets
    no answer when its no-answer score is above the threshold. Starts from 'no answer
    everywhere' and admits questions in increasing no-answer score."""
    current = best = sum(not has_answer[q] for q in scores)
    threshold = 0.0
    for qid in sorted(scores, key=lambda q: na_probs[q]):
        if has_answer[qid]:
            current += scores[qid]
        elif preds.get(qid):
            current -= 1  # an answer where there is none
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def evaluate(examples: Sequence[dict], preds: Dict[str, str], na_probs: Optional[Dict[str, float]] = None,
             na_threshold: float = 1.0) -> dict:
    """The official metrics: exact and f1 (%), by answerable / unanswerable questions when
    there are both, and with ``na_probs`` the best no-answer thresholds."""
    exact, f1s, has_answer = {}, {}, {}
    for ex in examples:
        qid, golds = ex["id"], gold_answers(ex)
        has_answer[qid] = golds != [""]
        pred = preds.get(qid, None)
        if pred is None:
            exact[qid] = f1s[qid] = 0.0
            continue
        exact[qid] = max(exact_match(pred, g) for g in golds)
        f1s[qid] = max(f1(pred, g) for g in golds)

    def thresholded(raw):
        if na_probs is None:
            return raw
        return {q: float(not has_answer[q]) if na_probs.get(q, 0.0) > na_threshold else s for q, s in raw.items()}

    def summary(e, f, qids):
        return {"exact": 100.0 * sum(e[q] for q in qids) / len(qids), "f1": 100.0 * sum(f[q] for q in qids) / len(qids),
                "total": len(qids)}

    e, f = thresholded(exact), thresholded(f1s)
    qids = list(exact)
    out = summary(e, f, qids)
    out["missing_predictions"] = sum(ex["id"] not in preds for ex in examples)
    has = [q for q in qids if has_answer[q]]
    no = [q for q in qids if not has_answer[q]]
    if has and no:
        out.update({f"HasAns_{k}": v for k, v in summary(e, f, has).items()})
        out.update({f"NoAns_{k}": v for k, v in summary(e, f, no).items()})
    if na_probs is not None:
        probs = {q: na_probs.get(q, 0.0) for q in qids}
        out["best_exact"], out["best_exact_thresh"] = best_threshold(exact, probs, has_answer, preds)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(f1s, probs, has_answer, preds)
    return out


# --------------------------------------------------------------------------- data

def load_squad(path: str) -> List[dict]:
    """SQuAD JSON -> [{id, question, context, answers: [{text, answer_start}], is_impossible}]."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SquadError(f"{path} cannot be read as JSON ({e}): pass a SQuAD file such as train-v1.1.json") from None
    examples = []
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    answers = qa.get("answers", [])
                    impossible = bool(qa.get("is_impossible", False))
                    for a in answers:
                        start = a["answer_start"]
                        if context[start:start + len(a["text"])] != a["text"]:
                            raise SquadError(f"{path}: question {qa['id']}: answer {a['text']!r} is not at "
                                             f"character {start} of its context; fix answer_start")
                    examples.append({"id": qa["id"], "question": qa["question"], "context": context,
                                     "answers": answers, "is_impossible": impossible})
    except (KeyError, TypeError) as e:
        raise SquadError(f"{path} is not in SQuAD format (missing {e}): expected "
                         "{'data': [{'paragraphs': [{'context', 'qas': [{'id', 'question', 'answers'}]}]}]}") from None
    if not examples:
        raise SquadError(f"{path} holds no questions")
    return examples


# --------------------------------------------------------------------------- tokens and offsets

def _byte_to_char(text: str) -> List[int]:
    """For every byte position of text's UTF-8 form (and the end), the character index."""
    table = []
    for i, ch in enumerate(text):
        table.extend([i] * len(ch.encode("utf-8")))
    table.append(len(text))
    return table


def sentencepiece_offsets(tokenizer, text: str) -> Tuple[List[int], List[Tuple[int, int]]]:
    """Ids and character spans of ``text``'s tokens from the tokenizer's sentencepiece model:
    its pieces record their byte span in the original (unnormalised) text. Spans leave out
    the whitespace a piece's '▁' stands for. Checked against the tokenizer's own ids."""
    proto = tokenizer.sp_model.encode(text, return_type="proto")
    to_char = _byte_to_char(text)
    pieces, offsets = [], []
    for piece in proto.pieces:
        start, end = to_char[piece.begin], to_char[piece.end]
        while start < end and text[start].isspace():
            start += 1
        pieces.append(piece.piece)
        offsets.append((start, end))
    ids = tokenizer.convert_tokens_to_ids(pieces)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ids != expected:
        raise SquadError("the tokenizer's ids differ from its sentencepiece pieces for the text "
                         f"{text[:60]!r}...: offsets cannot be mapped; use a tokenizer that returns "
                         "offset mappings (a fast tokenizer)")
    return ids, offsets


def token_offsets(tokenizer, text: str) -> Tuple[List[int], List[Tuple[int, int]]]:
    """Ids (no special tokens) and character spans of ``text``'s tokens."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if "offset_mapping" in enc:
            return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    if getattr(tokenizer, "sp_model", None) is not None:
        return sentencepiece_offsets(tokenizer, text)
    raise SquadError(f"{type(tokenizer).__name__} gives no offset mapping and has no sentencepiece model: "
                     "answers cannot be located in the text")


@dataclass
class Feature:
    """One window of one question: model inputs, and where its context tokens come from."""

    example: int
    input_ids: List[int]
    offsets: List[Optional[Tuple[int, int]]]  # character span of context tokens, None elsewhere
    start: int = 0  # answer token positions for training (0: <s>, no answer in this window)
    end: int = 0


def make_features(examples: Sequence[dict], tokenizer, max_length=384, doc_stride=128, max_query_length=64,
                  training=False) -> List[Feature]:
    overhead = len(tokenizer.build_inputs_with_special_tokens([], []))
    cache: Dict[str, Tuple] = {}
    features = []
    for n, ex in enumerate(examples):
        q_ids = tokenizer(ex["question"], add_special_tokens=False)["input_ids"][:max_query_length]
        if ex["context"] not in cache:
            cache = {ex["context"]: token_offsets(tokenizer, ex["context"])}  # consecutive questions share it
        c_ids, c_offsets = cache[ex["context"]]
        room = max_length - len(q_ids) - overhead
        if room < 1:
            raise SquadError(f"--max-length {max_length} leaves no room for the context after a "
                             f"{len(q_ids)}-token question: raise --max-length or lower --max-query-length")
        answer = None
        if training and ex["answers"] and not ex["is_impossible"]:
            a = ex["answers"][0]
            answer = (a["answer_start"], a["answer_start"] + len(a["text"]))
        start = 0
        while True:
            stop = min(start + room, len(c_ids))
            window = c_ids[start:stop]
            ids = tokenizer.build_inputs_with_special_tokens(q_ids, window)
            special = tokenizer.get_special_tokens_mask(q_ids, window)
            ordinary = [i for i, s in enumerate(special) if not s]
            context_positions = ordinary[len(q_ids):]
            offsets: List[Optional[Tuple[int, int]]] = [None] * len(ids)
            for pos, tok in zip(context_positions, range(start, stop)):
                offsets[pos] = c_offsets[tok]
            feature = Feature(n, ids, offsets)
            if answer is not None:
                inside = [p for p in context_positions if offsets[p][1] > answer[0] and offsets[p][0] < answer[1]]
                if inside and offsets[inside[0]][0] <= answer[0] and offsets[inside[-1]][1] >= answer[1]:
                    feature.start, feature.end = inside[0], inside[-1]
            features.append(feature)
            if stop >= len(c_ids):
                break
            start += min(doc_stride, room)
    return features


# --------------------------------------------------------------------------- model

def load_model(model_dir: str, trust_remote_code: bool = False):
    import amos_fairseq.export  # noqa: F401  (hides a broken torchaudio before transformers' models)
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise SquadError(f"{model_dir} has no config.json: pass the --out folder of scripts/export_hf.py")
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True, trust_remote_code=trust_remote_code)
    if getattr(config, "auto_map", None) and not trust_remote_code:
        raise SquadError(f"{model_dir} brings its own model code (auto_map in config.json): pass "
                         "--trust-remote-code to load it")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=trust_remote_code)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, local_files_only=True,
                                                          trust_remote_code=trust_remote_code)
    return model, tokenizer


def batches(features: Sequence[Feature], size: int, pad_id: int, order: Sequence[int]):
    import torch

    for i in range(0, len(order), size):
        chunk = [features[j] for j in order[i:i + size]]
        width = max(len(f.input_ids) for f in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        for row, f in enumerate(chunk):
            ids[row, :len(f.input_ids)] = torch.tensor(f.input_ids)
        yield order[i:i + size], {"input_ids": ids, "attention_mask": ids.ne(pad_id).long()}, chunk


def train(model, tokenizer, features: List[Feature], lr: float, epochs: float, batch: int, warmup_ratio: float,
          weight_decay: float, seed: int, max_steps: Optional[int] = None, log_every: int = 50) -> List[dict]:
    """Cross-entropy on start and end positions (transformers' QA loss), AdamW, linear warm-up
    then linear decay to 0. Returns the logged losses."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    random.seed(seed)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(features) / batch)
    total = max_steps or max(1, int(steps_per_epoch * epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, eps=1e-6)
    schedule = get_linear_schedule_with_warmup(optimizer, int(total * warmup_ratio), total)
    model.train()
    history, step = [], 0
    while step < total:
        order = list(range(len(features)))
        random.shuffle(order)
        for _, inputs, chunk in batches(features, batch, tokenizer.pad_token_id, order):
            out = model(**inputs, start_positions=torch.tensor([f.start for f in chunk]),
                        end_positions=torch.tensor([f.end for f in chunk]))
            optimizer.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % log_every == 0 or step == total or step == 1:
                history.append({"step": step, "loss": out.loss.item(), "lr": schedule.get_last_lr()[0]})
                print(f"[train] step {step}/{total} loss {out.loss.item():.4f}", file=sys.stderr, flush=True)
            if step >= total:
                break
    return history


def logits(model, tokenizer, features: List[Feature], batch: int = 64):
    import torch

    model.eval()
    starts, ends = [None] * len(features), [None] * len(features)
    with torch.no_grad():
        for idx, inputs, chunk in batches(features, batch, tokenizer.pad_token_id, list(range(len(features)))):
            out = model(**inputs)
            for row, j in enumerate(idx):
                n = len(features[j].input_ids)
                starts[j] = out.start_logits[row, :n].tolist()
                ends[j] = out.end_logits[row, :n].tolist()
    return starts, ends


def postprocess(examples: Sequence[dict], features: Sequence[Feature], start_logits, end_logits, n_best=20,
                max_answer_length=30, version_2=False, null_threshold=0.0):
    """(predictions, null_odds, best_spans): the answer text per question id (v2.0: '' when
    null score - best span score > null_threshold), that difference, and the best non-null
    text (for choosing the threshold)."""
    by_example = collections.defaultdict(list)
    for j, f in enumerate(features):
        by_example[f.example].append(j)
    predictions, null_odds, best_spans = {}, {}, {}
    for n, ex in enumerate(examples):
        best_score, best_text, null = -math.inf, "", math.inf
        for j in by_example[n]:
            f, s, e = features[j], start_logits[j], end_logits[j]
            null = min(null, s[0] + e[0])
            context = [p for p, o in enumerate(f.offsets) if o is not None]
            top_s = sorted(context, key=lambda p: s[p], reverse=True)[:n_best]
            top_e = sorted(context, key=lambda p: e[p], reverse=True)[:n_best]
            for a in top_s:
                for b in top_e:
                    if b < a or b - a + 1 > max_answer_length:
                        continue
                    score = s[a] + e[b]
                    if score > best_score:
                        best_score, best_text = score, ex["context"][f.offsets[a][0]:f.offsets[b][1]]
        best_spans[ex["id"]] = best_text
        diff = null - best_score if best_score > -math.inf else math.inf
        null_odds[ex["id"]] = diff if math.isfinite(diff) else 1e9
        predictions[ex["id"]] = "" if version_2 and diff > null_threshold else best_text
    return predictions, null_odds, best_spans


@dataclass
class Settings:
    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    n_best: int = 20
    max_answer_length: int = 30
    version_2: bool = False
    null_threshold: float = 0.0
    extras: dict = field(default_factory=dict)


def predict_and_score(model, tokenizer, examples, settings: Settings, out: str) -> dict:
    """Predictions, null odds and official metrics of ``examples`` written into ``out``."""
    features = make_features(examples, tokenizer, settings.max_length, settings.doc_stride, settings.max_query_length)
    starts, ends = logits(model, tokenizer, features)
    preds, odds, spans = postprocess(examples, features, starts, ends, settings.n_best, settings.max_answer_length,
                                     settings.version_2, settings.null_threshold)
    result = evaluate(examples, preds)
    if settings.version_2:
        # Best thresholds from the best non-null spans and their null odds (the sweep decides
        # which questions go unanswered), as the official script does with a no-answer file.
        best = evaluate(examples, spans, odds)
        result.update({k: v for k, v in best.items() if k.startswith("best_")})
    result.update({"features": len(features), "version": 2 if settings.version_2 else 1})
    for name, value in (("predictions.json", preds), ("null_odds.json", odds), ("eval.json", result)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
    return result


def check_lengths(model, settings: Settings) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and settings.max_length > limit:
        raise SquadError(f"--max-length {settings.max_length} exceeds the model's {limit} positions: pass "
                         f"--max-length {limit} or less")


# --------------------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("model_dir", help="an export of scripts/export_hf.py (train) or OUT/model of train (predict)")
        p.add_argument("--out", required=True, help="output folder (built aside, appears when complete)")
        p.add_argument("--force", action="store_true", help="replace an --out that this script wrote")
        p.add_argument("--version", type=int, choices=(1, 2), default=1, help="SQuAD v1.1 or v2.0 (no-answer questions)")
        p.add_argument("--max-length", type=int, default=384)
        p.add_argument("--doc-stride", type=int, default=128)
        p.add_argument("--max-query-length", type=int, default=64)
        p.add_argument("--n-best", type=int, default=20)
        p.add_argument("--max-answer-length", type=int, default=30)
        p.add_argument("--null-threshold", type=float, default=0.0)
        p.add_argument("--trust-remote-code", action="store_true", help="load a model folder that brings its own code")

    p = sub.add_parser("train", help="fine-tune on a SQuAD file (and score --dev)")
    common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--dev")
    p.add_argument("--lr", type=float, default=1e-4, help="ELECTRA paper: 3e-4 small, 1e-4 base")
    p.add_argument("--epochs", type=float, default=2, help="ELECTRA paper: 2")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-steps", type=int, help="stop after this many updates (checks)")
    p = sub.add_parser("predict", help="predict and score a SQuAD file with a fine-tuned model")
    common(p)
    p.add_argument("--data", required=True)
    p = sub.add_parser("eval", help="score a predictions file (official definitions)")
    p.add_argument("data")
    p.add_argument("predictions")
    p.add_argument("--na-probs", help="no-answer scores per question id (e.g. null_odds.json)")
    p.add_argument("--na-prob-thresh", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "eval":
            examples = load_squad(args.data)
            preds = _load_json(args.predictions)
            na = _load_json(args.na_probs) if args.na_probs else None
            print(json.dumps(evaluate(examples, preds, na, args.na_prob_thresh), indent=2))
            return
        settings = Settings(args.max_length, args.doc_stride, args.max_query_length, args.n_best,
                            args.max_answer_length, args.version == 2, args.null_threshold)
        inputs = [args.model_dir, getattr(args, "train", None), getattr(args, "dev", None), getattr(args, "data", None)]
        try:
            with output_dir(args.out, TOOL, args.force, inputs) as tmp:
                run_command(args, settings, tmp)
        except OutputDirError as e:
            raise SquadError(str(e)) from None
        if os.path.isfile(os.path.join(args.out, "eval.json")):
            with open(os.path.join(args.out, "eval.json"), encoding="utf-8") as f:
                print(f.read())
    except SquadError as e:
        sys.exit(f"error: {e}")


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SquadError(f"{path} cannot be read as JSON ({e})") from None


def run_command(args, settings: Settings, out: str) -> None:
    model, tokenizer = load_model(args.model_dir, args.trust_remote_code)
    check_lengths(model, settings)
    info = {"model": os.path.abspath(args.model_dir), "settings": settings.__dict__}
    if args.command == "train":
        examples = load_squad(args.train)
        if any(ex["is_impossible"] for ex in examples) and not settings.version_2:
            raise SquadError(f"{args.train} has unanswerable questions (is_impossible): pass --version 2")
        start = time.time()
        features = make_features(examples, tokenizer, settings.max_length, settings.doc_stride,
                                 settings.max_query_length, training=True)
        history = train(model, tokenizer, features, args.lr, args.epochs, args.batch, args.warmup_ratio,
                        args.weight_decay, args.seed, args.max_steps)
        info.update({"train": os.path.abspath(args.train), "train_features": len(features), "history": history,
                     "train_seconds": time.time() - start,
                     "hparams": {k: getattr(args, k) for k in ("lr", "epochs", "batch", "warmup_ratio",
                                                               "weight_decay", "seed", "max_steps")}})
        model.save_pretrained(os.path.join(out, "model"))
        tokenizer.save_pretrained(os.path.join(out, "model"))
        data = args.dev
    else:
        data = args.data
    if data:
        start = time.time()
        result = predict_and_score(model, tokenizer, load_squad(data), settings, out)
        info.update({"data": os.path.abspath(data), "predict_seconds": time.time() - start})
        print(f"[eval] {data}: exact {result['exact']:.2f} f1 {result['f1']:.2f}", file=sys.stderr)
    with open(os.path.join(out, "run.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
