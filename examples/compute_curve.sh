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
#   3. evaluates each kept checkpoint of EVAL_AT [1000 3000 10000 30000] that exists: zero-shot
#      BLiMP (scripts/blimp.py) and fine-tuning on TASKS [the three shipped tasks of
#      compare.sh] with compare.sh's recipe against random weights, FT_SEEDS [1 2 3]; writes
#      WORK/curve.md and WORK/curve.png (scripts/curve_table.py). Finished parts are reused.
#   Run again, it resumes from checkpoint_last.pt (a session that ends mid-run loses at most
#   1000 updates). fp32 unless CPU_BF16=on/auto (off by default: one run keeps one precision
#   whichever machine resumes it).
# What it needs: python3 (.venv set up on the first run), xz, the corpus file.
# How long: see docs/cpu-scale.md (measured there); THREADS [1] threads.
#
# Environment overrides: CURVE_TEXT, METHOD [electra], UPDATES [30000], SEED [1], VOCAB [4000],
#   THREADS [1], CPU_BF16 [off], SKIP_TRAIN [0; 1: only evaluate what is there], EVAL_AT, FT_SEEDS, TASKS, BLIMP [../shared/data/blimp]
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
if [ "${SKIP_TRAIN:-0}" = 1 ]; then log "SKIP_TRAIN=1: evaluating the checkpoints there are"; else
log "pretraining $METHOD for $UPDATES updates -> $run (log: $run.log)"
# The CPU-scale recipe, validated and saved every 1000 updates with every such checkpoint kept.
PRETRAIN_SEED="${SEED:-1}" CPU_BF16="${CPU_BF16:-off}" pretrain_cpu_scale "$corpus/data-bin" "$run" "$UPDATES" \
    "${model[@]}" --log-interval 100 --validate-interval-updates 1000 --save-interval-updates 1000 \
    --keep-interval-updates -1
log "done: $run/checkpoints"
fi

# Evaluation of every kept checkpoint named in EVAL_AT that exists: zero-shot BLiMP
# (discriminator and generator, with the random-weights and unigram controls), and
# fine-tuning on TASKS against the same architecture from random weights (FT_SEEDS, one
# scratch run per seed shared by all checkpoints); then the table (scripts/curve_table.py).
EVAL_AT="${EVAL_AT:-1000 3000 10000 30000}"; FT_SEEDS="${FT_SEEDS:-1 2 3}"
BLIMP="${BLIMP:-../shared/data/blimp}"
TASKS="${TASKS:-examples/data/tasks/conll2010_wiki_uncertainty examples/data/tasks/election_tweets_2016 examples/data/source_id}"
tasks_dir="$WORK/tasks"; mkdir -p "$tasks_dir"
for task in $TASKS; do ln -sfn "$(cd "$task" && pwd)" "$tasks_dir/$(basename "$task")"; done
finetune() {  # finetune CKPT OUT SEED SCRATCH: the compare.sh recipe (lr 1e-3, 5 epochs, mean pooling)
    has_every_task_result "$2" $TASKS && return  # a run cut short leaves results.tsv with its header only
    mkdir -p "$(dirname "$2")"
    SKIP_SETUP=1 FROM_SCRATCH="$4" SEED="$3" LR=1e-3 EPOCHS=5 POOLING=mean \
        bash examples/finetune_tsv.sh "$1" "$corpus" "$tasks_dir" "$2" > "$2.log" 2>&1 \
        || { tail -n 20 "$2.log" >&2; echo "error: fine-tuning failed ($2.log)" >&2; exit 1; }
}
for n in $EVAL_AT; do
    ckpt="$(ls "$run"/checkpoints/checkpoint_*_"$n".pt 2>/dev/null | head -n 1)"
    [ -n "$ckpt" ] || { log "no checkpoint at update $n (yet): not evaluated"; continue; }
    out="$WORK/eval/$n"; mkdir -p "$out"
    if [ ! -f "$out/blimp.json" ] && [ -d "$BLIMP" ]; then
        log "BLiMP at update $n"
        "$PY" scripts/blimp.py "$ckpt" --corpus "$corpus" --blimp "$BLIMP" --generator \
            --json "$out/blimp.json" > "$out/blimp.txt" 2>&1 || { tail -n 5 "$out/blimp.txt" >&2; exit 1; }
    fi
    for seed in $FT_SEEDS; do
        log "fine-tuning from update $n, seed $seed"; finetune "$ckpt" "$out/finetune-seed$seed" "$seed" 0
        log "fine-tuning from random weights, seed $seed"; finetune "$ckpt" "$WORK/eval/scratch/finetune-seed$seed" "$seed" 1
    done
done
"$PY" scripts/curve_table.py "$WORK"
