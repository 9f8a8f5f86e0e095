#!/usr/bin/env bash
# Data-parallel fairseq-train with torchrun: CPU processes (gloo) or GPUs (NCCL).
#
#   bash examples/distributed.sh WORLD_SIZE cpu|gpu DATA [fairseq-train args...]
#   bash examples/distributed.sh 2 cpu runs/corpus/data-bin --task amos_rtd --arch amos_tiny \
#        --criterion amos --batch-size 8 --max-update 20 ...
#
# What it does: starts WORLD_SIZE workers on this machine with torchrun, each running
#   fairseq-train on its share of every batch; gradients are all-reduced, so the update is
#   that of one batch WORLD_SIZE times larger (--update-freq still multiplies it further).
#   Rank 0 writes the one log and the checkpoints; resuming works as for one process.
#   cpu: --distributed-backend gloo --ddp-backend legacy_ddp (fairseq's pytorch_ddp backend
#        needs device ids and fails on CPU); torchrun alone without --distributed-world-size
#        would silently start independent jobs.
#   gpu: --distributed-backend nccl --ddp-backend pytorch_ddp, one GPU per worker.
#   --user-dir amos_fairseq is added when not given. Several machines: run the same command
#   on each with TORCHRUN_ARGS="--nnodes N --node-rank R --master-addr HOST --master-port P"
#   and WORLD_SIZE = processes per machine (the script multiplies by --nnodes).
# What it needs: the .venv (torchrun comes with torch); for gpu, WORLD_SIZE visible GPUs.
# How long: start-up ~15 s per run on 2 CPU cores, then as fast as the slowest worker.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -lt 3 ]; then sed -n '2,22p' "$0" >&2; exit 2; fi
NPROC="$1"; DEVICE="$2"; DATA="$3"; shift 3
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || { echo "error: WORLD_SIZE must be a positive integer, got '$NPROC'" >&2; exit 2; }
nnodes=1
if [[ "${TORCHRUN_ARGS:-}" =~ --nnodes[=\ ]([0-9]+) ]]; then nnodes="${BASH_REMATCH[1]}"; fi
world=$(( NPROC * nnodes ))
case "$DEVICE" in
    cpu) dist=(--distributed-backend gloo --ddp-backend legacy_ddp --cpu) ;;
    gpu) dist=(--distributed-backend nccl --ddp-backend pytorch_ddp) ;;
    *) echo "error: the second argument must be cpu or gpu, got '$DEVICE'" >&2; exit 2 ;;
esac
user_dir=(--user-dir "$USER_DIR")
for a in "$@"; do [ "$a" = --user-dir ] && user_dir=(); done
standalone=(--standalone)
[ -n "${TORCHRUN_ARGS:-}" ] && standalone=()

log "torchrun: $NPROC worker(s) per node x $nnodes node(s), $DEVICE"
exec "$ROOT/.venv/bin/torchrun" "${standalone[@]}" --nproc_per_node "$NPROC" ${TORCHRUN_ARGS:-} \
    "$TRAIN" "$DATA" "${user_dir[@]}" "$@" \
    --distributed-world-size "$world" --distributed-init-method env:// --distributed-no-spawn \
    --distributed-rank -1 "${dist[@]}"
