#!/usr/bin/env bash
# A compute curve at the CPU scale: one long pretraining run with a checkpoint every 1000
# updates, so that what the encoder has learned can be measured against tokens seen.
#
#   bash examples/compute_curve.sh [WORK]        (default WORK: runs/curve)
#
# What it does:
#   1. prepares CURVE_TEXT [../shared/data/corpus/gutenberg37.txt.xz, 37 public-domain novels,
#      hard-wrapped: each paragraph is joined into one line] together with the shipped corpus
#      (examples/data/corpus-full.txt.xz) with a VOCAB [4000]-piece sentencepiece model;
#   2. pretrains the CPU-scale recipe (docs/cpu-scale.md: batch 32 x 128 tokens, lr 2e-3, 200
#      warm-up updates, linear decay to UPDATES, no dropout) of METHOD [electra] for UPDATES
#      [30000] updates with SEED [1], validating and saving every 1000 updates and keeping
#      every such checkpoint (WORK/run/checkpoints/checkpoint_*_N.pt). The learning rate decays
#      over the whole run, so the checkpoint at 3000 updates is not the 3000-update recipe.
#   Run again, it resumes from checkpoint_last.pt (a session that ends mid-run loses at most
#   1000 updates). fp32 unless CPU_BF16=on/auto (off by default: one run keeps one precision
#   whichever machine resumes it).
# What it needs: python3 (.venv set up on the first run), xz, the corpus file.
# How long: see docs/cpu-scale.md (measured there); THREADS [1] threads.
#
# Environment overrides: CURVE_TEXT, METHOD [electra], UPDATES [30000], SEED [1], VOCAB [4000],
#   THREADS [1], CPU_BF16 [off]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORK="${1:-runs/curve}"
CURVE_TEXT="${CURVE_TEXT:-../shared/data/corpus/gutenberg37.txt.xz}"
METHOD="${METHOD:-electra}"; UPDATES="${UPDATES:-30000}"; VOCAB="${VOCAB:-4000}"
export OMP_NUM_THREADS="${THREADS:-1}"
[ -f "$CURVE_TEXT" ] || { echo "error: CURVE_TEXT=$CURVE_TEXT does not exist: point it at a text file (.txt or .xz)" >&2; exit 2; }
case "$METHOD" in
    electra|focal_hardness) model=(--arch electra_mini --criterion "$METHOD") ;;
    amos) model=(--arch amos_mini --criterion amos) ;;
    *) echo "error: METHOD=$METHOD: choose electra, amos or focal_hardness" >&2; exit 2 ;;
esac
own_dir "$WORK" compute_curve || exit 2

paragraphs="$WORK/$(basename "${CURVE_TEXT%.xz}" .txt).paragraphs.txt"
if [ ! -f "$paragraphs.done" ]; then
    log "joining the hard-wrapped lines of $CURVE_TEXT into one paragraph per line -> $paragraphs"
    { if [[ "$CURVE_TEXT" == *.xz ]]; then xz -dc "$CURVE_TEXT"; else cat "$CURVE_TEXT"; fi; } \
        | awk 'BEGIN { RS = ""; ORS = "\n" } { gsub(/[ \t]*\n[ \t]*/, " "); print }' > "$paragraphs"
    touch "$paragraphs.done"
fi
corpus="$WORK/corpus"
if [ ! -f "$corpus/data-bin/train.bin" ]; then
    log "sentencepiece ($VOCAB pieces) + binarize -> $corpus"
    "$PY" scripts/prepare_corpus.py "$paragraphs" examples/data/corpus-full.txt.xz --out "$corpus" \
        --vocab-size "$VOCAB" --valid-lines 1000 --workers 2 --force
fi

run="$WORK/run"
mkdir -p "$run"
log "pretraining $METHOD for $UPDATES updates -> $run (log: $run.log)"
"$TRAIN" "$corpus/data-bin" --user-dir "$USER_DIR" --task amos_rtd "${model[@]}" \
    --dropout 0 --attention-dropout 0 --cpu-bf16 "${CPU_BF16:-off}" \
    --tokens-per-sample 128 --sample-break-mode complete --mask-prob 0.15 --batch-size 32 \
    --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr 2e-3 --lr-scheduler polynomial_decay --warmup-updates 200 \
    --total-num-update "$UPDATES" --max-update "$UPDATES" --seed "${SEED:-1}" \
    --num-workers 0 --log-format simple --log-interval 100 \
    --validate-interval-updates 1000 --save-interval-updates 1000 --keep-interval-updates -1 \
    --no-epoch-checkpoints --save-dir "$run/checkpoints" --tensorboard-logdir "$run/tensorboard" \
    >> "$run.log" 2>&1
log "done: $run/checkpoints"
