# Timed steps for .ci/run and scripts/test (sourced, not run).
#
# `step NAME COMMAND...` runs COMMAND, prints its wall time, and appends
# "NAME<TAB>SECONDS<TAB>STATUS" to $VERITUNE_STEP_TIMES (a file the outermost
# script creates), so a slow step shows in every log. `background NAME
# COMMAND...` runs a step alongside what follows, its output kept until
# `await_step NAME` prints it and returns its status. `in_pair NAME
# COMMAND...` is `background` once fewer than two paired steps run (two steps keep
# both cores busy where one step uses one); `await_pairs` awaits those steps
# in the order they started and fails naming the failed ones. `steps_table`
# prints the steps as a table with their sum and the wall clock from start
# to end.

if [ -z "${VERITUNE_STEP_TIMES:-}" ]; then
    VERITUNE_STEP_TIMES=$(mktemp)
    export VERITUNE_STEP_TIMES
    VERITUNE_STEPS_OWNER=$$
    VERITUNE_STEPS_START=$(date +%s)
fi
STEP_LOGS=$(mktemp -d)
declare -A STEP_PIDS

step() {
    local name=$1 start status=0
    shift
    start=$(date +%s)
    echo "==> $name"
    "$@" || status=$?
    local took=$(($(date +%s) - start))
    printf '%s\t%s\t%s\n' "$name" "$took" "$status" >>"$VERITUNE_STEP_TIMES"
    if [ "$status" -eq 0 ]; then
        echo "<== $name: ${took} s"
    else
        echo "<== $name: ${took} s, FAILED (exit $status)"
    fi
    return "$status"
}

step_log() {
    echo "$STEP_LOGS/${1//[^A-Za-z0-9]/_}.log"
}

background() {
    local name=$1
    shift
    step "& $name" "$@" >"$(step_log "$name")" 2>&1 &
    STEP_PIDS[$name]=$!
}

await_step() {
    local name=$1 status=0
    wait "${STEP_PIDS[$name]}" || status=$?
    cat "$(step_log "$name")"
    return "$status"
}

PAIRED=()

# How many of the paired steps still run.
pairs_running() {
    local name count=0
    for name in "${PAIRED[@]}"; do
        kill -0 "${STEP_PIDS[$name]}" 2>/dev/null && count=$((count + 1))
    done
    echo "$count"
}

in_pair() {
    while [ "$(pairs_running)" -ge 2 ]; do wait -n || true; done
    background "$@"
    PAIRED+=("$1")
}

# `slowest_first DIR EXT "NAME..."` prints DIR/NAME.EXT for each NAME (the
# slowest, in that order), then every other DIR/*.EXT: the order in which
# paired steps start, so that the longest do not start last.
slowest_first() {
    local dir=$1 ext=$2 name file listed=()
    for name in $3; do listed+=("$dir/$name.$ext"); done
    for file in "$dir"/*."$ext"; do
        [[ " ${listed[*]} " == *" $file "* ]] || listed+=("$file")
    done
    printf '%s\n' "${listed[@]}"
}

await_pairs() {
    local name failed=()
    for name in "${PAIRED[@]}"; do
        await_step "$name" || failed+=("$name")
    done
    PAIRED=()
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed: ${failed[*]}" >&2
        return 1
    fi
}

# Prints the table of steps (only in the script that created the file).
steps_table() {
    rm -rf "$STEP_LOGS"
    [ "${VERITUNE_STEPS_OWNER:-}" = "$$" ] || return 0
    [ -s "$VERITUNE_STEP_TIMES" ] || return 0
    echo
    echo "Step times (wall clock, seconds; steps marked & ran alongside others):"
    awk -F'\t' '{ printf "  %-44s %6d%s\n", $1, $2, ($3 == 0 ? "" : "  FAILED"); total += $2 }
        END { printf "  %-44s %6d  (%d min %d s)\n", "sum of the steps", total, total / 60, total % 60 }' \
        "$VERITUNE_STEP_TIMES"
    local wall=$(($(date +%s) - VERITUNE_STEPS_START))
    printf '  %-44s %6d  (%d min %d s)\n' "wall clock, start to end" "$wall" $((wall / 60)) $((wall % 60))
    rm -f "$VERITUNE_STEP_TIMES"
}
trap steps_table EXIT
