#!/usr/bin/env bash
# GLUE from a pretraining checkpoint, scored the way the ELECTRA and AMOS papers report it.
#
#   bash examples/glue.sh CHECKPOINT CORPUS_DIR GLUE_DIR [WORK]
#     (default WORK: runs/glue/RUN-CHECKPOINT)
#
# What it does: for every GLUE task folder in GLUE_DIR (CoLA SST-2 MRPC STS-B QQP MNLI QNLI
#   RTE WNLI, as distributed; a missing one is skipped with a line saying so, a malformed
#   one stops the run before any training, naming the file, line and column), encodes the
#   task's own columns with the pretraining sentencepiece model, fine-tunes CHECKPOINT with
#   fairseq's sentence_prediction (STS-B as regression) once per seed with the task's row of
#   examples/glue_hparams.tsv, and scores the final model on dev with the task's metrics.
#   Prints and writes WORK/summary.md and WORK/summary.tsv (median over seeds per metric, the
#   GLUE average and the ELECTRA/AMOS average), WORK/runs.tsv (every seed) and
#   WORK/submission/ (test predictions of each task's median seed, GLUE's file format).
#   An interrupted run continues: finished seeds are kept. All logic: scripts/glue.py.
# What it needs: CHECKPOINT from a pretraining run; CORPUS_DIR written by
#   scripts/prepare_corpus.py for that run (spm.model, dict.txt); the GLUE data folder.
# How long: base size, all tasks, 5 seeds: an estimated 3-8 GPU-hours on one A100/H100 (docs/glue_squad.md);
#   a tiny model on 200-row fake tasks: 10-30 s per task and seed on 2 CPU cores.
#
# Environment overrides (defaults in brackets): SEEDS [1,2,3,4,5] PRESET [from the
#   checkpoint's arch: amos-base, electra-base or electra-small] TASKS [every folder found,
#   e.g. CoLA,RTE] FROM_MNLI [0; 1: RTE, MRPC and STS-B start from the median MNLI model]
#   KEEP_CHECKPOINTS [0] FROM_SCRATCH [0; 1: the control, CHECKPOINT's architecture and
#   vocabulary from random weights] EXTRA_ARGS [''] (more fairseq-train arguments, e.g. '--fp16' on GPUs)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -lt 3 ]; then
    sed -n "2,29p" "$0" >&2
    exit 2
fi
CHECKPOINT="$1"; CORPUS="$2"; GLUE="$3"
[ -f "$CHECKPOINT" ] || { echo "error: checkpoint $CHECKPOINT does not exist" >&2; exit 2; }
[ -f "$CORPUS/spm.model" ] || { echo "error: $CORPUS has no spm.model: pass the --out of scripts/prepare_corpus.py" >&2; exit 2; }
[ -d "$GLUE" ] || { echo "error: GLUE folder $GLUE does not exist" >&2; exit 2; }
ckpt_name="$(basename "$(dirname "$(dirname "$(realpath "$CHECKPOINT")")")")-$(basename "$CHECKPOINT" .pt)"
WORK="${4:-runs/glue/$ckpt_name}"
own_dir "$WORK" glue || exit 2

args=(--seeds "${SEEDS:-1,2,3,4,5}")
[ -n "${PRESET:-}" ] && args+=(--preset "$PRESET")
[ -n "${TASKS:-}" ] && args+=(--tasks "$TASKS")
[ "${FROM_MNLI:-0}" = 1 ] && args+=(--from-mnli)
[ "${KEEP_CHECKPOINTS:-0}" = 1 ] && args+=(--keep-checkpoints)
[ "${FROM_SCRATCH:-0}" = 1 ] && args+=(--from-scratch)
# shellcheck disable=SC2086  # EXTRA_ARGS is a list of words
exec "$PY" scripts/glue.py run "$CHECKPOINT" "$CORPUS" "$GLUE" "$WORK" "${args[@]}" -- ${EXTRA_ARGS:-}
