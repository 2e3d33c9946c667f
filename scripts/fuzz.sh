#!/usr/bin/env bash
# Runs every fuzz target under ./pkg/ for FUZZTIME each (make fuzz), then
# prints a line per target with its executions.
#
# A target fails when go test fails for any reason but one: Go 1.26's fuzz
# coordinator can report "context deadline exceeded" when -fuzztime runs
# out while a worker is still busy (golang/go#75804, fixed in Go 1.27).
# That is not a finding, and it is told apart from one by what a finding
# leaves behind: a new failing input in testdata/fuzz/<target>/. Such a
# run is counted as "deadline race", not as a pass or a failure.
#
# FUZZMINIMIZETIME bounds the minimisation of each new input (Go's
# default, 60s, can take a whole short run for targets whose inputs are
# large and whose calls are slow).
set -uo pipefail

fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZETIME:-5s}
go=${GO:-go}
summary=()
failed=0

for pkg in $($go list ./pkg/...); do
	dir=$($go list -f '{{.Dir}}' "$pkg")
	targets=$($go test -list='^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		echo "== $pkg $target"
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort)
		log=$(mktemp)
		$go test -run=NONE -fuzz="^$target\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" "$pkg" 2>&1 | tee "$log"
		rc=$?
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [ "$rc" -eq 0 ]; then
			verdict=ok
		elif [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log" && [ "$(grep -c -- '--- FAIL' "$log")" -eq 1 ]; then
			verdict="deadline race (golang/go#75804), no failing input"
		else
			verdict=FAIL
			failed=1
		fi
		rm -f "$log"
		summary+=("$(printf '%-16s %-38s %11s execs  %s' "${pkg#github.com/keygate/keygate/}" "$target" "${execs:-0}" "$verdict")")
	done
done

echo
echo "fuzz summary (FUZZTIME=$fuzztime each):"
printf '%s\n' "${summary[@]}"
exit $failed
