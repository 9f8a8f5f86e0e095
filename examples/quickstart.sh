#!/usr/bin/env bash
# Quickstart: corpus -> sentencepiece -> pretraining -> fine-tuning, all on CPU.
#
#   bash examples/quickstart.sh [WORK]          (default WORK: runs/quickstart)
#
# What it does: from the shipped corpus slice examples/data/corpus.txt.xz (Moby-Dick and
#   State of the Union prose, 24k lines) it trains a 2000-piece sentencepiece model and
#   binarizes the text (scripts/prepare_corpus.py), pretrains a tiny AMOS model
#   (--arch amos_tiny --criterion amos) for a few hundred updates, fine-tunes it on
#   examples/data/source_id (which text does a sentence come from: 3 labels) with
#   examples/finetune_tsv.sh, and prints dev accuracy next to the majority-class baseline.
# What it needs: python3 (scripts/setup_env.sh creates .venv on the first run), 2 CPU cores.
# How long: about 10 minutes on 2 cores (measured: docs/workflows.md), most of it the
#   pretraining and fine-tuning. Re-running reuses the prepared corpus and the finished
#   pretraining (fairseq resumes and stops at once); FRESH=1 starts over.
#
# Environment overrides: ARCH [amos_tiny] CRITERION [amos] (e.g. ARCH=electra_tiny
#   CRITERION=electra, or CRITERION=focal_hardness), PRETRAIN_UPDATES [300],
#   FINETUNE_EPOCHS [3], FINETUNE_LR [1e-3], FRESH [0].
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORK="${1:-runs/quickstart}"
ARCH="${ARCH:-amos_tiny}"; CRITERION="${CRITERION:-amos}"
PRETRAIN_UPDATES="${PRETRAIN_UPDATES:-300}"
start=$(date +%s)
[ "${FRESH:-0}" = 1 ] && rm -rf "$WORK"
mkdir -p "$WORK"

corpus="$WORK/corpus"
if [ ! -f "$corpus/data-bin/train.bin" ]; then
    log "1/3 sentencepiece + binarize: examples/data/corpus.txt.xz -> $corpus"
    "$PY" scripts/prepare_corpus.py examples/data/corpus.txt.xz --out "$corpus" \
        --vocab-size 2000 --valid-lines 300 --force
else
    log "1/3 reusing $corpus"
fi

pretrain="$WORK/pretrain-$CRITERION-$ARCH"
log "2/3 pretraining --arch $ARCH --criterion $CRITERION for $PRETRAIN_UPDATES updates -> $pretrain"
"$TRAIN" "$corpus/data-bin" --user-dir "$USER_DIR" \
    --task amos_rtd --arch "$ARCH" --criterion "$CRITERION" \
    --tokens-per-sample 128 --sample-break-mode complete --mask-prob 0.15 \
    --batch-size 16 --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 \
    --clip-norm 1.0 --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 30 \
    --total-num-update "$PRETRAIN_UPDATES" --max-update "$PRETRAIN_UPDATES" \
    --seed 1 --num-workers 0 --log-format simple --log-interval 25 \
    --disable-validation --no-epoch-checkpoints --save-interval-updates 100 --keep-interval-updates 1 \
    --save-dir "$pretrain/checkpoints" --tensorboard-logdir "$pretrain/tensorboard" \
    2>&1 | tee -a "$pretrain.log" >&2
grep "| train_inner |" "$pretrain.log" | tail -1 >&2 || true
if "$PY" -c "import matplotlib" 2>/dev/null; then
    "$PY" scripts/plot_curves.py "$pretrain/tensorboard" --out "$pretrain/curves.png" || true
fi

log "3/3 fine-tuning on examples/data/source_id"
SKIP_SETUP=1 LR="${FINETUNE_LR:-1e-3}" EPOCHS="${FINETUNE_EPOCHS:-3}" \
    bash examples/finetune_tsv.sh "$pretrain/checkpoints/checkpoint_last.pt" "$corpus" \
    examples/data/source_id "$WORK/finetune-$CRITERION-$ARCH"

echo "quickstart finished in $(( $(date +%s) - start )) s; outputs under $WORK"
