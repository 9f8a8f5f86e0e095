#!/usr/bin/env bash
# Equal-budget comparison (the same updates and batch for every method; the MLM-only run
# costs more per update) at the CPU scale: ELECTRA, AMOS, focal-hardness, an MLM-only model
# of the discriminator's size, and the same discriminator from random weights.
#
#   bash examples/compare.sh [WORK]          (default WORK: runs/compare)
#
# What it does:
#   1. prepares CORPUS_TEXT [examples/data/corpus-full.txt.xz: all of the shipped State of the
#      Union and Moby-Dick text, 2.5M tokens] with a VOCAB [4000]-piece sentencepiece model;
#   2. pretrains one discriminator per method, all with the same 4 x 128 discriminator
#      (docs/cpu-scale.md), UPDATES [3000] updates of 32 x 128 tokens, lr 2e-3, no dropout,
#      once per pretraining seed in PRETRAIN_SEEDS [1]:
#        electra         --arch electra_mini --criterion electra (generator 4 x 32)
#        amos            --arch amos_mini --criterion amos (generators of depth 2,3,4, width 32)
#        focal_hardness  --arch electra_mini --criterion focal_hardness
#        mlm             --arch electra_mini --rtd-weight 0 with the generator built like the
#                        discriminator (a BERT-style masked LM), whose encoder then becomes
#                        the discriminator (scripts/mlm_as_discriminator.py)
#      and writes each run's summary next to the unigram model and the label prior, and its
#      zero-shot BLiMP (scripts/blimp.py: discriminator and every generator depth, beside the
#      same architecture from random weights and the unigram floor) on the BLIMP folder;
#   3. fine-tunes every pretrained discriminator and the same architecture from random
#      weights (scratch) on every task folder in TASKS, once per fine-tuning seed in SEEDS
#      [1 2 3], with one recipe for all (LR, EPOCHS, POOLING below);
#   4. writes WORK/results/{results.md,results.tsv,dev_scores.png,pretraining.png}
#      (scripts/compare_results.py): BLiMP per method; mean and std over seeds per task, the
#      average; the differences to ELECTRA and to scratch (BLiMP: to random weights) with
#      95% intervals over seeds, paired by seed.
#   Which spread: fine-tuning seed number i starts from pretraining seed number i of
#   PRETRAIN_SEEDS (cycling through them). With one pretraining seed (the default) the spread is
#   over fine-tuning seeds only; with PRETRAIN_SEEDS="1 2 3" and SEEDS="1 2 3" every fine-tuning
#   run starts from its own pretraining run, so the spread covers both (3x the pretraining).
#   Finished steps are reused when the script runs again (FRESH=1 starts over); a fine-tuning
#   run only when it started from the checkpoint this call asks for (more PRETRAIN_SEEDS than
#   before redo fine-tuning seeds 2 and up, which started from the first pretraining seed).
#   JOBS runs that many pretraining or fine-tuning runs at once, THREADS/JOBS threads each
#   (the small models use a second thread poorly: two electra pretraining runs side by side,
#   one thread each, took 19.4-20.1 min, one alone with two threads about 16 min);
#   progress lines then carry the run's name, and a failed run stops new ones from starting.
# What it needs: python3 (.venv is set up on the first run), 2 CPU cores.
# How long (measured with JOBS=2 on 2 cores, one thread per run, two runs sharing the
#   cores): 3000 pretraining updates take 20.7-20.8 min for amos and 19.4-20.1 min for electra;
#   one fine-tuning run on election_tweets_2016 and source_id (5 epochs) about 6.6 min.
#   Alone on 2 cores (JOBS=1): electra ~16 min, MLM-only ~28 min (1.8 updates/s);
#   focal_hardness 21-27 min with other jobs sharing the cores (not timed alone). The
#   defaults with JOBS=1 and one or three other jobs on the cores (docs/results.md):
#   pretraining plus BLiMP 36-37 min for electra and amos, about 70 min for mlm (with one
#   other run beside it: mlm 44-46 min, focal_hardness 28-29 min, a fine-tuning run 9.3-10.5); the
#   fine-tuning stage (five arms x three tasks x three seeds) 141 min; about 5 hours in all, summed from those parts.
#   Each extra pretraining seed adds the four methods' pretraining again (METHODS="amos electra" PRETRAIN_SEEDS="1 2 3" JOBS=2: 69 min for the six runs).
#
# Environment overrides (defaults in brackets): METHODS [mlm electra amos focal_hardness]
#   TASKS [examples/data/tasks/conll2010_wiki_uncertainty examples/data/tasks/election_tweets_2016
#   examples/data/source_id] SEEDS [1 2 3] UPDATES [3000] PRETRAIN_SEEDS [1] LR [1e-3]
#   EPOCHS [5] POOLING [mean] CORPUS_TEXT VOCAB [4000] THREADS [2] JOBS [1] FRESH [0]
#   BLIMP [../shared/data/blimp: BLiMP .jsonl files; missing: BLiMP left out]
#   BLIMP_PAIRS [all, or N: the first N pairs of each paradigm]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORK="${1:-runs/compare}"
METHODS="${METHODS:-mlm electra amos focal_hardness}"
TASKS="${TASKS:-examples/data/tasks/conll2010_wiki_uncertainty examples/data/tasks/election_tweets_2016 examples/data/source_id}"
SEEDS="${SEEDS:-1 2 3}"; UPDATES="${UPDATES:-3000}"; PRETRAIN_SEEDS="${PRETRAIN_SEEDS:-1}"
CORPUS_TEXT="${CORPUS_TEXT:-examples/data/corpus-full.txt.xz}"; VOCAB="${VOCAB:-4000}"
BLIMP="${BLIMP:-../shared/data/blimp}"; BLIMP_PAIRS="${BLIMP_PAIRS:-all}"
for method in $METHODS; do
    case "$method" in electra|amos|focal_hardness|mlm) ;;
        *) echo "error: METHODS has '$method': choose among electra, amos, focal_hardness, mlm" >&2; exit 2 ;;
    esac
done
JOBS="${JOBS:-1}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "error: JOBS=$JOBS: give a whole number of runs at once (1, 2, ...)" >&2; exit 2; }
threads_per_job=$(( ${THREADS:-2} / JOBS )); export OMP_NUM_THREADS=$(( threads_per_job > 0 ? threads_per_job : 1 ))
start=$(date +%s)
# WORK is this recipe's own folder; FRESH=1 removes it first (never a folder it did not make).
if [ "${FRESH:-0}" = 1 ]; then fresh_dir "$WORK" compare || exit 2; fi
own_dir "$WORK" compare || exit 2

corpus="$WORK/corpus"
prepare_corpus_once "$CORPUS_TEXT" "$corpus" "$VOCAB"

# in_parallel CMD...: CMD in the background, at most JOBS at once. A run that failed (it has
# said why) stops new ones from starting; stage_done_or_exit then checks every run's output.
failed=0
in_parallel() {
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
    if [ "$failed" = 0 ]; then "$@" & fi
}
# stage_done_or_exit STAGE DONE DIR...: once the stage's runs have ended, `DONE DIR` must hold
# for every DIR
stage_done_or_exit() {
    local stage="$1" done="$2" dir missing=0; shift 2
    wait || true
    for dir in "$@"; do "$done" "$dir" || { echo "error: $stage did not finish $dir" >&2; missing=1; }; done
    [ "$missing" = 0 ] || exit 1
}

pretrained() { [ -f "$1/summary.json" ]; }
# pretrain METHOD SEED: WORK/pretrain-METHOD-seedSEED/checkpoints/checkpoint_last.pt, .log,
# summary.json
pretrain() {
    local method="$1" seed="$2" dir="$WORK/pretrain-$1-seed$2"
    local model=()
    case "$method" in
        electra|focal_hardness) model=(--arch electra_mini --criterion "$method") ;;
        amos) model=(--arch amos_mini --criterion amos) ;;
        mlm) model=(--arch electra_mini --criterion electra --rtd-weight 0 --generator-embed-dim 128
                    --generator-ffn-embed-dim 512 --generator-attention-heads 4 --generator-depths 4) ;;
    esac
    if pretrained "$dir"; then log "pretrain $method: done already ($dir)"; blimp "$dir"; return; fi
    log "pretrain $method, seed $seed: $UPDATES updates -> $dir"
    PRETRAIN_SEED="$seed" pretrain_cpu_scale "$corpus/data-bin" "$dir" "$UPDATES" "${model[@]}" || exit 1
    if [ "$method" = mlm ]; then
        "$PY" scripts/mlm_as_discriminator.py "$dir/checkpoints/checkpoint_last.pt" "$dir/checkpoints/discriminator.pt"
    fi
    blimp "$dir"
    "$PY" scripts/pretraining_summary.py "$corpus/data-bin" "$dir.log" --json "$dir/summary.json"
}

# blimp DIR: zero-shot BLiMP of DIR's last checkpoint -> DIR/blimp.json (skipped, with a line,
# when the BLiMP folder is missing; reused when done)
blimp() {
    local dir="$1"
    [ -f "$dir/blimp.json" ] && return
    if [ ! -d "$BLIMP" ]; then log "no BLiMP folder $BLIMP: zero-shot BLiMP left out (set BLIMP)"; return; fi
    local sample=(); [ "$BLIMP_PAIRS" != all ] && sample=(--max-pairs "$BLIMP_PAIRS")
    "$PY" scripts/blimp.py "$dir/checkpoints/checkpoint_last.pt" --corpus "$corpus" --blimp "$BLIMP" \
        --generator "${sample[@]}" --json "$dir/blimp.json" > "$dir.blimp.txt" 2>&1 \
        || { tail -n 5 "$dir.blimp.txt" >&2; echo "error: BLiMP scoring of $dir failed ($dir.blimp.txt)" >&2; exit 1; }
    log "BLiMP of $(basename "$dir"): $(grep -m1 '^overall' "$dir.blimp.txt" | tr -s ' ')"
}

# start_checkpoint METHOD SEED: the checkpoint fine-tuning starts from
start_checkpoint() {
    if [ "$1" = mlm ]; then echo "$WORK/pretrain-mlm-seed$2/checkpoints/discriminator.pt"
    else echo "$WORK/pretrain-$1-seed$2/checkpoints/checkpoint_last.pt"; fi
}

# pretraining_seed_for I: the pretraining seed that fine-tuning seed number I (0-based) uses
pretraining_seeds=($PRETRAIN_SEEDS)
pretraining_seed_for() { echo "${pretraining_seeds[$(( $1 % ${#pretraining_seeds[@]} ))]}"; }

# Seed by seed: the first pretraining seed of every method is done before any second seed
# starts, so an interrupted run already holds one whole comparison.
pretraining_dirs=()
for seed in $PRETRAIN_SEEDS; do for method in $METHODS; do
    in_parallel pretrain "$method" "$seed"; pretraining_dirs+=("$WORK/pretrain-$method-seed$seed")
done; done
stage_done_or_exit pretraining pretrained "${pretraining_dirs[@]}"

# Fine-tuning: one recipe for every arm. scratch takes its architecture (electra_mini: the
# same discriminator as every method) and vocabulary from the first method's checkpoint.
reference="$(start_checkpoint "${METHODS%% *}" "${pretraining_seeds[0]}")"
tasks_dir="$WORK/tasks"
mkdir -p "$tasks_dir"
for task in $TASKS; do ln -sfn "$(cd "$task" && pwd)" "$tasks_dir/$(basename "$task")"; done
# finetune ARM SEED CHECKPOINT SCRATCH OUT: one fine-tuning run on every task
finetune() {
    local arm="$1" seed="$2" ckpt="$3" scratch="$4" out="$5"
    log "fine-tune $arm, seed $seed$([ "$scratch" = 0 ] && echo ", from $(dirname "$(dirname "$ckpt")")")"
    mkdir -p "$(dirname "$out")"
    rm -f "$out/started_from"  # a run being redone is not finished until it has succeeded
    SKIP_SETUP=1 FROM_SCRATCH=$scratch SEED="$seed" ARCH=electra_mini LR="${LR:-1e-3}" \
        EPOCHS="${EPOCHS:-5}" POOLING="${POOLING:-mean}" \
        bash examples/finetune_tsv.sh "$ckpt" "$corpus" "$tasks_dir" "$out" > "$out.log" 2>&1 \
        || { tail -n 20 "$out.log" >&2; echo "error: fine-tuning $arm seed $seed failed ($out.log)" >&2; exit 1; }
    started_from "$ckpt" "$scratch" > "$out/started_from"
    log "fine-tuned $arm, seed $seed"
}
# started_from CHECKPOINT SCRATCH: what a fine-tuning run started from, kept in OUT/started_from
# so that a later call with other PRETRAIN_SEEDS does not reuse a run of another checkpoint
started_from() { if [ "$2" = 1 ]; then echo "random weights"; else echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; fi; }
# finished OUT [CHECKPOINT SCRATCH]: OUT/results.tsv has a line for every task (header
# included), OUT/started_from says what it started from, and that is CHECKPOINT when given (a
# run finished from another checkpoint, or by a compare.sh that did not record it, is said and
# redone)
finished() {
    has_every_task_result "$1" $TASKS || return 1
    if [ $# = 1 ]; then [ -f "$1/started_from" ]; return; fi
    local want; want="$(started_from "$2" "$3")"
    [ "$(cat "$1/started_from" 2>/dev/null)" = "$want" ] && return 0
    log "redoing $1: it started from $(cat "$1/started_from" 2>/dev/null || echo 'an unrecorded checkpoint'), this call asks for $want"
    return 1
}

index=0; finetune_dirs=()
for seed in $SEEDS; do
    pretrained_seed="$(pretraining_seed_for $index)"; index=$(( index + 1 ))
    for arm in scratch $METHODS; do
        out="$WORK/finetune/$arm/seed$seed"; finetune_dirs+=("$out")
        if [ "$arm" = scratch ]; then ckpt="$reference"; scratch=1; else ckpt="$(start_checkpoint "$arm" "$pretrained_seed")"; scratch=0; fi
        finished "$out" "$ckpt" "$scratch" && continue
        in_parallel finetune "$arm" "$seed" "$ckpt" "$scratch" "$out"
    done
done
stage_done_or_exit fine-tuning finished "${finetune_dirs[@]}"

"$PY" scripts/compare_results.py "$WORK"
echo "compare finished in $(( $(date +%s) - start )) s; results under $WORK/results"
