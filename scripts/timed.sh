#!/usr/bin/env bash
# timed.sh NAME COMMAND...: run COMMAND, then print the suite's wall time whatever it returned.
name=$1; shift
start=$(date +%s%N)
"$@"; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf '== %s: %d.%01ds wall, exit %d\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100)) "$rc"
exit $rc
