#!/usr/bin/env bash
# Fine-tune a pretrained checkpoint on TSV classification tasks and report each dev metric.
#
#   bash examples/finetune_tsv.sh CHECKPOINT CORPUS_DIR TASKS [WORK]
#     (default WORK: runs/finetune/RUN-CHECKPOINT[-scratch]-seedSEED)
#
# What it does: for every task folder (TASKS itself if it holds train.tsv, otherwise each
#   subfolder of TASKS that does: a GLUE-style layout), converts train/dev/test.tsv with
#   scripts/prepare_classification.py (the pretraining sentencepiece model and dict.txt),
#   fine-tunes with fairseq's sentence_prediction task and criterion from CHECKPOINT
#   (--restore-file with --reset-optimizer --reset-dataloader --reset-meters; the generator
#   and RTD head are dropped on load), and prints one line per task: best dev accuracy next
#   to the majority-class baseline, and where test.tsv has labels the test accuracy at that
#   epoch (a number not selected on the data it reports). Results also go to
#   WORK/results.tsv (scripts/best_epoch.py reads the log). WORK must be new,
#   empty or an earlier finetune_tsv.sh folder (whose results and checkpoints it replaces).
# What it needs: CHECKPOINT from a pretraining run (examples/pretrain.sh, quickstart.sh);
#   CORPUS_DIR written by scripts/prepare_corpus.py for that run (spm.model, dict.txt);
#   TSV files with a header, 'sentence<TAB>label' or 'sentence1<TAB>sentence2<TAB>label'.
# How long: a 2000-sentence task with a tiny or mini model, 3-5 epochs: about 2-6 minutes
#   on 2 CPU cores (see docs/workflows.md). A base model on GLUE wants a GPU.
#
# Environment overrides (defaults in brackets): LR [1e-4] BATCH [32] EPOCHS [3]
#   WARMUP_RATIO [0.06] MAX_POSITIONS [the checkpoint's] ARCH [the checkpoint's]
#   DROPOUT [0.1] SEED [1] POOLING [first: the <s> token; mean: over the tokens]
#   FROM_SCRATCH [0; 1: the same architecture from random weights, CHECKPOINT only names the
#   architecture and vocabulary: the control every pretraining gain is measured against]
#   LAYERWISE_LR_DECAY [1: off; ELECTRA: 0.8] EXTRA_ARGS [''] (e.g. '--fp16' on GPUs)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -lt 3 ]; then
    sed -n "2,28p" "$0" >&2
    exit 2
fi
CHECKPOINT="$1"; CORPUS="$2"; TASKS="$3"
[ -f "$CHECKPOINT" ] || { echo "error: checkpoint $CHECKPOINT does not exist" >&2; exit 2; }
[ -f "$CORPUS/spm.model" ] || { echo "error: $CORPUS has no spm.model: pass the --out of scripts/prepare_corpus.py" >&2; exit 2; }
# One folder per checkpoint, arm and seed unless named: runs never share results or checkpoints.
ckpt_name="$(basename "$(dirname "$(dirname "$(realpath "$CHECKPOINT")")")")-$(basename "$CHECKPOINT" .pt)"
WORK="${4:-runs/finetune/$ckpt_name$([ "${FROM_SCRATCH:-0}" = 1 ] && echo -scratch)-seed${SEED:-1}}"
own_dir "$WORK" finetune_tsv || exit 2

ARCH="${ARCH:-$(checkpoint_field "$CHECKPOINT" arch)}"
MAX_POSITIONS="${MAX_POSITIONS:-$(checkpoint_field "$CHECKPOINT" max_positions)}"
LR="${LR:-1e-4}"; BATCH="${BATCH:-32}"; EPOCHS="${EPOCHS:-3}"; WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
DROPOUT="${DROPOUT:-0.1}"; SEED="${SEED:-1}"; POOLING="${POOLING:-first}"
optimizer=(--optimizer adam)
if [ "${LAYERWISE_LR_DECAY:-1}" != 1 ]; then
    optimizer=(--optimizer scaled_adam --layerwise-lr-decay "$LAYERWISE_LR_DECAY")
fi
restore=(--restore-file "$CHECKPOINT" --reset-optimizer --reset-dataloader --reset-meters)
[ "${FROM_SCRATCH:-0}" = 1 ] && restore=()

if [ -f "$TASKS/train.tsv" ]; then
    task_dirs=("$TASKS")
else
    task_dirs=()
    for d in "$TASKS"/*/; do [ -f "$d/train.tsv" ] && task_dirs+=("${d%/}"); done
fi
[ ${#task_dirs[@]} -gt 0 ] || { echo "error: no train.tsv in $TASKS or its subfolders" >&2; exit 2; }

mkdir -p "$WORK"
printf "task\tdev_accuracy\tmajority_baseline\tupdates\ttest_accuracy\n" > "$WORK/results.tsv"
for task_dir in "${task_dirs[@]}"; do
    task="$(basename "$task_dir")"
    data="$WORK/$task/data"; save="$WORK/$task/checkpoints"
    log "[$task] preparing $task_dir -> $data"
    "$PY" scripts/prepare_classification.py "$task_dir" --corpus-dir "$CORPUS" --checkpoint "$CHECKPOINT" \
        --out "$data" --force
    read -r num_classes rows baseline <<< "$("$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); \
print(m['num_classes'], m['rows']['train'], m['dev_majority_accuracy'])" "$data/meta.json")"
    updates=$(( (rows + BATCH - 1) / BATCH * EPOCHS ))
    warmup=$("$PY" -c "print(max(1, int($updates * $WARMUP_RATIO)))")
    # a labelled test split is scored at every epoch too; the dev split picks the epoch
    subsets=valid; [ -f "$data/label/test.bin" ] && subsets=valid,test
    rm -rf "$save"
    log "[$task] fine-tuning $ARCH ($([ ${#restore[@]} = 0 ] && echo 'from random weights' || echo "from $CHECKPOINT")): $num_classes classes, $rows rows, $updates updates, lr $LR"
    "$TRAIN" "$data" --user-dir "$USER_DIR" \
        --task sentence_prediction --criterion sentence_prediction --arch "$ARCH" \
        --num-classes "$num_classes" --init-token 0 --separator-token 2 \
        --max-positions "$MAX_POSITIONS" --shorten-method truncate \
        ${restore[@]+"${restore[@]}"} --classification-pooling "$POOLING" \
        --dropout "$DROPOUT" --attention-dropout "$DROPOUT" \
        "${optimizer[@]}" --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
        --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates "$warmup" --total-num-update "$updates" \
        --batch-size "$BATCH" --max-epoch "$EPOCHS" --seed "$SEED" --valid-subset "$subsets" \
        --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric \
        --no-epoch-checkpoints --no-last-checkpoints --save-dir "$save" \
        --log-format simple --log-interval 20 --num-workers 0 \
        --tensorboard-logdir "$WORK/$task/tensorboard" ${EXTRA_ARGS:-} 2>&1 | tee "$WORK/$task/train.log" >&2
    # best dev accuracy over the epochs and the test accuracy at that epoch
    scores="$("$PY" scripts/best_epoch.py "$WORK/$task/train.log")" \
        || { echo "error: no validation result in $WORK/$task/train.log" >&2; exit 1; }
    read -r acc test_acc <<< "$scores"
    printf "%s\t%s\t%.1f\t%s\t%s\n" "$task" "$acc" "$("$PY" -c "print(100 * $baseline)")" "$updates" "$test_acc" \
        >> "$WORK/results.tsv"
    grep -q "dropped .* pretraining-only tensors of generator" "$WORK/$task/train.log" \
        && log "[$task] generator dropped on load, as intended"
done
echo
echo "dev accuracy (%) per task, next to always predicting the most frequent training label:"
column -t -s $'\t' "$WORK/results.tsv" 2>/dev/null || cat "$WORK/results.tsv"
