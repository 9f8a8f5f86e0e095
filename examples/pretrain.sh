#!/usr/bin/env bash
# Pretraining recipes: ELECTRA, AMOS and focal-hardness at small and base size.
#
#   DATA=corpus/data-bin GPUS=8 bash examples/pretrain.sh METHOD SIZE [cpu] [extra fairseq args]
#     METHOD: electra | amos | focal_hardness        SIZE: small | base  (tiny: test size)
#
# What it does: runs fairseq-train with the amos_rtd task, the METHOD criterion and the
#   METHOD_SIZE architecture (focal_hardness uses the electra_SIZE network) with each paper's
#   optimisation settings (tables below): Adam (eps 1e-6), weight decay 0.01, linear warmup
#   then linear decay, clip 1.0, fp16, the global batch reached with
#   --update-freq = BATCH / (GPUS * PER_GPU_BATCH). Checkpoints, log and tensorboard logs go
#   to WORK (default runs/pretrain/METHOD-SIZE); a re-run resumes from checkpoint_last.pt.
#
#   size  method                 batch  seq  updates  peak lr  warmup  source
#   small electra/focal_hardness   128  128  1M       5e-4     10k     ELECTRA paper, small
#   base  electra/focal_hardness   256  512  766k     2e-4     10k     ELECTRA paper, base
#   small amos                     128  128  1M       5e-4     10k     ELECTRA-small budget (AMOS has no small setting)
#   base  amos                    2048  512  125k     5e-4     10k     AMOS/COCO-LM base budget; lr not checked against the paper's table
#
#   method                 Adam betas     generator dropout  generator input at selected positions         source
#   electra/focal_hardness (0.9, 0.999)   0.1 (the arch's)   <mask>, 15% left unchanged (--leave-unmasked-prob 0.15)  ELECTRA paper, Table 6; its released configs
#   amos                   (0.9, 0.98)    0 (the arch's)     <mask> everywhere                              AMOS / COCO-LM (RoBERTa's optimiser)
#   ADAM_BETAS="(0.9,0.98)" gives the electra recipes the setting they used before; the
#   generator dropout is the architecture's default, --generator-dropout D overrides it.
#
#   With `cpu`: the same architecture and criterion run for CPU_UPDATES [20] updates at
#   batch 8 x 128 tokens on DATA, by default the shipped corpus slice (prepared under
#   runs/corpus on first use), fp32, no GPU needed: a check that the recipe runs, not a
#   useful model.
# What it needs: GPU mode: DATA, a directory made by scripts/prepare_corpus.py (data-bin/),
#   one or more GPUs (GPUS [1]; more go through examples/distributed.sh). CPU mode: nothing.
# How long: cpu mode here (2 cores): small about 2-4 min, base about 10 min (docs/workflows.md).
#   GPU mode: days (ELECTRA-base: ~4 days on 16 TPUv3 chips in the paper).
#
# Environment overrides: DATA, WORK, GPUS [1], PER_GPU_BATCH [small 128, base 32 (amos 16)],
#   MAX_UPDATE, LR, WARMUP, ADAM_BETAS [the method's, above], CPU_UPDATES [20], SEED [1].
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -lt 2 ]; then sed -n '2,36p' "$0" >&2; exit 2; fi
METHOD="$1"; SIZE="$2"; shift 2
MODE=gpu
if [ "${1:-}" = cpu ]; then MODE=cpu; shift; fi

case "$METHOD" in
    electra|focal_hardness) family=electra; leave_unmasked=0.15; betas="(0.9,0.999)" ;;
    amos) family=amos; leave_unmasked=0.0; betas="(0.9,0.98)" ;;
    *) echo "error: METHOD must be electra, amos or focal_hardness, got '$METHOD'" >&2; exit 2 ;;
esac
case "$SIZE/$family" in
    tiny/*)         batch=16;   seq=128; updates=1000;    lr=1e-3; warmup=100;   per_gpu=16 ;;
    small/*)        batch=128;  seq=128; updates=1000000; lr=5e-4; warmup=10000; per_gpu=128 ;;
    base/electra)   batch=256;  seq=512; updates=766000;  lr=2e-4; warmup=10000; per_gpu=32 ;;
    base/amos)      batch=2048; seq=512; updates=125000;  lr=5e-4; warmup=10000; per_gpu=16 ;;
    *) echo "error: SIZE must be small or base (or tiny), got '$SIZE'" >&2; exit 2 ;;
esac
ARCH="${family}_${SIZE}"
suffix=""; [ "$MODE" = cpu ] && suffix="-cpu"
WORK="${WORK:-runs/pretrain/$METHOD-$SIZE$suffix}"
LR="${LR:-$lr}"; WARMUP="${WARMUP:-$warmup}"; SEED="${SEED:-1}"

if [ "$MODE" = cpu ]; then
    if [ -z "${DATA:-}" ]; then
        # The shipped slice, prepared once into the recipe's own folder (never a folder named
        # by the user: a DATA without train.bin is an error below).
        DATA=runs/corpus/data-bin
        if [ ! -f "$DATA/train.bin" ]; then
            log "preparing the shipped corpus slice -> ${DATA%/data-bin}"
            "$PY" scripts/prepare_corpus.py examples/data/corpus.txt.xz --out "${DATA%/data-bin}" \
                --vocab-size 2000 --valid-lines 300 --force
        fi
    fi
    [ -f "$DATA/train.bin" ] || { echo "error: DATA=$DATA has no train.bin: pass the data-bin folder that scripts/prepare_corpus.py wrote, or leave DATA unset for the shipped corpus slice" >&2; exit 2; }
    MAX_UPDATE="${MAX_UPDATE:-${CPU_UPDATES:-20}}"
    seq=128; WARMUP=$(( MAX_UPDATE / 10 + 1 ))
    size_args=(--batch-size 8 --update-freq 1)
    precision=()
    launch=("$TRAIN")
else
    : "${DATA:?set DATA to a data-bin directory made by scripts/prepare_corpus.py}"
    MAX_UPDATE="${MAX_UPDATE:-$updates}"
    GPUS="${GPUS:-1}"; PER_GPU_BATCH="${PER_GPU_BATCH:-$per_gpu}"
    if (( batch % (GPUS * PER_GPU_BATCH) )); then
        echo "error: batch $batch is not a multiple of GPUS x PER_GPU_BATCH = $GPUS x $PER_GPU_BATCH" >&2; exit 2
    fi
    size_args=(--batch-size "$PER_GPU_BATCH" --update-freq $(( batch / (GPUS * PER_GPU_BATCH) )))
    precision=(--fp16 --fp16-init-scale 128)
    if [ "$GPUS" -gt 1 ]; then
        launch=(bash examples/distributed.sh "$GPUS" gpu)
    else
        launch=("$TRAIN")
    fi
fi

mkdir -p "$WORK"
log "pretraining $METHOD $SIZE ($MODE): --arch $ARCH, ${size_args[*]}, $MAX_UPDATE updates, lr $LR -> $WORK"
SKIP_SETUP=1 "${launch[@]}" "$DATA" --user-dir "$USER_DIR" \
    --task amos_rtd --arch "$ARCH" --criterion "$METHOD" \
    --tokens-per-sample "$seq" --sample-break-mode complete \
    --mask-prob 0.15 --leave-unmasked-prob "$leave_unmasked" \
    "${size_args[@]}" "${precision[@]}" \
    --optimizer adam --adam-betas "${ADAM_BETAS:-$betas}" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates "$WARMUP" \
    --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE" \
    --seed "$SEED" --num-workers "$([ $MODE = cpu ] && echo 0 || echo 4)" --log-format simple --log-interval "$([ $MODE = cpu ] && echo 5 || echo 100)" \
    --save-dir "$WORK/checkpoints" --save-interval-updates "$([ $MODE = cpu ] && echo "$MAX_UPDATE" || echo 10000)" \
    --keep-interval-updates 3 --no-epoch-checkpoints --validate-interval-updates "$([ $MODE = cpu ] && echo "$MAX_UPDATE" || echo 10000)" \
    --tensorboard-logdir "$WORK/tensorboard" "$@" 2>&1 | tee -a "$WORK/train.log" >&2
log "done: $WORK/checkpoints/checkpoint_last.pt; curves: .venv/bin/python scripts/plot_curves.py $WORK/tensorboard --out $WORK/curves.png"
