#!/usr/bin/env bash
# Runs each fuzz target given as package:Name for FUZZTIME (default 10s).
#
# A target fails when it writes a crasher under testdata/fuzz/<Name>/ or
# fails in any way other than Go's fuzz-coordinator shutdown race: with a
# duration -fuzztime, a worker still running at the deadline makes
# `go test` fail with a bare "context deadline exceeded" and no input
# (golang/go#75804, fixed in Go 1.27). Such a run is retried, at most
# twice; three such runs in a row fail the target. Minimizing a new
# interesting input is capped at FUZZMINIMIZETIME (default 2s), or a
# 10 s run can spend most of its time minimizing.
set -uo pipefail
fuzztime=${FUZZTIME:-10s}
go=${GO:-go}
status=0
for t in "$@"; do
	pkg=${t%%:*}
	name=${t##*:}
	dir="$pkg/testdata/fuzz/$name"
	for try in 1 2 3; do
		before=$(ls "$dir" 2>/dev/null | sort)
		echo "fuzz $pkg $name for $fuzztime (try $try)"
		out=$(mktemp)
		$go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" -fuzzminimizetime="${FUZZMINIMIZETIME:-2s}" "$pkg" 2>&1 | tee "$out"
		rc=${PIPESTATUS[0]}
		after=$(ls "$dir" 2>/dev/null | sort)
		new=$(comm -13 <(echo "$before") <(echo "$after"))
		if [ "$rc" -eq 0 ]; then
			rm -f "$out"
			break
		fi
		if [ -z "$new" ] && grep -q '^    context deadline exceeded$' "$out" &&
			[ "$(grep -c -- '--- FAIL' "$out")" -eq 1 ] && [ "$try" -lt 3 ]; then
			echo "fuzz $pkg $name: coordinator deadline race (no input written), retrying"
			rm -f "$out"
			continue
		fi
		rm -f "$out"
		if [ -n "$new" ]; then
			echo "fuzz $pkg $name FAILED; new input(s) in $dir: $new"
		else
			echo "fuzz $pkg $name FAILED (exit $rc)"
		fi
		status=1
		break
	done
	[ "$status" -eq 0 ] || exit "$status"
done
