# Shared by the recipes in examples/ (sourced, not run): repository root, the virtual
# environment, and small helpers. Set SKIP_SETUP=1 to use an existing .venv as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "${SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup_env.sh >&2
fi
PY="$ROOT/.venv/bin/python"
TRAIN="$ROOT/.venv/bin/fairseq-train"
USER_DIR="$ROOT/amos_fairseq"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# checkpoint_field CKPT FIELD: a field of the model config saved in a checkpoint (arch, max_positions, ...)
checkpoint_field() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
import torch
try:
    state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
except Exception as e:  # truncated or not a checkpoint
    sys.exit(f"error: {sys.argv[1]} is not a complete checkpoint ({type(e).__name__}): use another one")
model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
print(getattr(model, sys.argv[2], None) if not isinstance(model, dict) else model.get(sys.argv[2]))
PYEOF
}

# Working folders carry the marker file that scripts/output_dir.py writes, naming the recipe
# that made them: a recipe writes into, or (FRESH=1) removes, only a folder it made itself.
MARKER=.amos-fairseq-output

# own_dir DIR RECIPE: DIR becomes RECIPE's folder: created with the marker when missing or
# empty, reused when it holds RECIPE's marker, refused otherwise (a folder of the user's own).
own_dir() {
    local dir="$1" recipe="$2"
    if [ -e "$dir" ] && [ ! -d "$dir" ]; then
        echo "error: $dir exists and is not a folder: choose another WORK" >&2; return 2
    fi
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        if [ "$(cat "$dir/$MARKER" 2>/dev/null)" != "$recipe" ]; then
            echo "error: $dir exists and was not made by $recipe (no $recipe marker $MARKER in it): choose another WORK, or move that folder away" >&2
            return 2
        fi
        return 0
    fi
    mkdir -p "$dir" && echo "$recipe" > "$dir/$MARKER"
}

# fresh_dir DIR RECIPE: remove DIR (FRESH=1) only if RECIPE made it; refuse otherwise.
fresh_dir() {
    [ -e "$1" ] || return 0
    own_dir "$1" "$2" || return 2
    rm -rf "$1"
}

# has_every_task_result OUT TASKS...: OUT/results.tsv (finetune_tsv.sh's table, a header line
# then one line per task) has a line for every task in TASKS; a run cut short leaves fewer.
has_every_task_result() {
    local out="$1"; shift
    [ -f "$out/results.tsv" ] && [ "$(wc -l < "$out/results.tsv")" -gt "$#" ]
}

# prepare_corpus_once TEXT DIR VOCAB: sentencepiece + binarize TEXT into DIR (skipped when
# DIR/data-bin is there already)
prepare_corpus_once() {
    if [ -f "$2/data-bin/train.bin" ]; then log "reusing $2"; return; fi
    log "sentencepiece ($3 pieces) + binarize: $1 -> $2"
    "$PY" scripts/prepare_corpus.py "$1" --out "$2" --vocab-size "$3" --valid-lines 1000 --workers 2
}

# pretrain_cpu_scale DATA_BIN DIR UPDATES ARGS...: the CPU-scale pretraining recipe
# (docs/cpu-scale.md): batch 32 x up to 128 tokens, lr 2e-3 with 200 warm-up updates and
# linear decay, no dropout, validation every 500 updates and at the end; forward passes under
# CPU bf16 autocast where this CPU's bf16 products are fast (CPU_BF16 [auto]; off: fp32
# everywhere, as the measurements in docs/ were made). ARGS name the
# architecture and criterion; they come last, so they may also override any flag above. Full log in DIR.log (progress lines on stderr, after the run's
# name), checkpoints in DIR/checkpoints, tensorboard logs in DIR/tensorboard. Fails with the
# log's tail.
pretrain_cpu_scale() {
    local data="$1" dir="$2" updates="$3"; shift 3
    mkdir -p "$dir"
    "$TRAIN" "$data" --user-dir "$USER_DIR" --task amos_rtd \
        --dropout 0 --attention-dropout 0 --cpu-bf16 "${CPU_BF16:-auto}" \
        --tokens-per-sample 128 --sample-break-mode complete --mask-prob 0.15 --batch-size 32 \
        --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
        --lr 2e-3 --lr-scheduler polynomial_decay --warmup-updates 200 \
        --total-num-update "$updates" --max-update "$updates" --seed "${PRETRAIN_SEED:-1}" \
        --num-workers 0 --log-format simple --log-interval 50 \
        --validate-interval-updates 500 --save-interval-updates 500 --keep-interval-updates 1 \
        --no-epoch-checkpoints --save-dir "$dir/checkpoints" --tensorboard-logdir "$dir/tensorboard" \
        "$@" >> "$dir.log" 2>&1 &
    local pid=$!
    tail -n +1 --pid "$pid" -f "$dir.log" | grep --line-buffered -E "\| (train_inner|valid) \|" \
        | sed -u "s|^|[$(basename "$dir")] |" >&2 || true
    wait "$pid" || { tail -n 20 "$dir.log" >&2; echo "error: pretraining failed ($dir.log)" >&2; return 1; }
}
