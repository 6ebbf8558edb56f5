#!/usr/bin/env bash
# scripts/bench.d/rules_bench.sh - the `rules` section of scripts/bench:
# decisions per second of the access-rules evaluator (ag_rules_eval) for ten
# thousand rules whose only match is the last one (rules_bench.c). Pure CPU,
# no network, no daemon: it links rules_bench.c with the module libraries of
# the build under test (the daemon's own code: the rules module and what it
# links) and runs it.
#
#   scripts/bench.d/rules_bench.sh [--quick] [--sections LIST] [--tmp DIR] [--root DIR]
#
# Takes scripts/bench's arguments as they are: --quick (0.5 s per figure
# instead of BENCH_SECONDS, default 5, capped at 3 here), --sections (runs only
# when LIST names `rules`), --tmp/--root; anything else is ignored.
# Environment: BENCH_SECONDS, BENCH_RULES (10000), CC (gcc), RULES_BENCH_CFLAGS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=""
quick=0
sections=""
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --tmp) tmp=${2:?}; shift ;;
        --tmp=*) tmp=${1#--tmp=} ;;
        --root) root=${2:?}; shift ;;
        --root=*) root=${1#--root=} ;;
        --sections) sections=${2:?}; shift ;;
        --sections=*) sections=${1#--sections=} ;;
        --syscalls) sections=syscalls ;;
        --json) shift ;;  # takes a value; the figure is printed only
        *) ;;
    esac
    shift
done
if [[ -n $sections && ,$sections, != *,rules,* ]]; then
    exit 0
fi

own_tmp=""
if [[ -z $tmp ]]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/authgate-rules-bench.XXXXXX")
    own_tmp=$tmp
fi
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { [[ -z $own_tmp ]] || rm -rf -- "$own_tmp"; }
trap cleanup EXIT
work="$tmp/rules-bench"
mkdir -p "$work"

if ((quick)); then
    seconds=0.5
else
    seconds=${BENCH_SECONDS:-5}
    if (( ${seconds%.*} > 3 )); then seconds=3; fi  # a CPU loop settles fast
fi

cc=${CC:-gcc}
# shellcheck disable=SC2086  # RULES_BENCH_CFLAGS is a list of flags
# The module libraries of the build under test (the daemon's own objects, as
# CMake built them: RelWithDebInfo is -O2): rules, and what it links.
lib=$(dirname "${AUTHGATE_BIN:-$root/build/authgate}")
if [[ ! -f $lib/libag_rules.a ]]; then
    echo "rules_bench: no $lib/libag_rules.a (build first, or set AUTHGATE_BIN)" >&2
    exit 1
fi
"$cc" -std=c11 -O2 -D_GNU_SOURCE ${RULES_BENCH_CFLAGS:-} -I"$root/include" -I"$root/src" \
    -o "$work/rules_bench" "$here/rules_bench.c" -L"$lib" -Wl,--start-group -lag_rules \
    -lag_http -lag_config -lag_util -lag_proxy -Wl,--end-group -lssl -lcrypto -lnettle -luv

echo
echo "== rules: access-rule decisions (ag_rules_eval, one thread, no I/O)"
"$work/rules_bench" -n "${BENCH_RULES:-10000}" -s "$seconds" -d "$work"
