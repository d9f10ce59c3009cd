#!/usr/bin/env bash
# Mutation testing with a list of our own mutants, for code that a mutation tool
# cannot reach (store/internal/core is tested through store/sqlite's suite, so
# gremlins, which runs only the mutated package's tests, finds nothing covered).
#
#   scripts/mutants/run.sh scripts/mutants/core.txt
#
# A list names the tests to run (`# test: ./store/sqlite`) and one mutant a line:
#   file <TAB> perl substitution (applied with perl -0pe) <TAB> the bug it plants
# Each mutant is applied to a copy of HEAD (git archive) in a temporary folder, never
# to the work tree, and the tests are run once per mutant: a failing run kills it,
# a passing run lets it live. A substitution that changes nothing is reported as
# STALE (the code moved: update the list) and fails the script.
#
# Not part of `go test ./...` nor of .ci/run: it compiles and runs the tests once
# per mutant (about 15 s each on two cores).
set -euo pipefail

list=${1:?usage: scripts/mutants/run.sh LIST}
root=$(git rev-parse --show-toplevel)
list=$(cd "$(dirname "$list")" && pwd)/$(basename "$list")
tests=$(sed -n 's/^# test: //p' "$list")
[ -n "$tests" ] || { echo "$list: no '# test:' line" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive HEAD | tar -x -C "$tmp"
cd "$tmp"
echo "mutating a copy of $(git -C "$root" rev-parse --short HEAD); tests: $tests"
go test -count=1 $tests >/dev/null || { echo "the tests fail without any mutant" >&2; exit 2; }

killed=0 lived=0 stale=0
while IFS=$'\t' read -r file sub what; do
	case "$file" in '' | '#'*) continue ;; esac
	cp "$file" "$tmp/.orig"
	perl -0pi -e "$sub" "$file"
	if cmp -s "$file" "$tmp/.orig"; then
		echo "STALE   $file: $what"
		stale=$((stale + 1))
		continue
	fi
	if timeout 600 go test -count=1 $tests >"$tmp/.out" 2>&1; then
		echo "LIVED   $file: $what"
		lived=$((lived + 1))
	else
		echo "killed  $file: $what"
		killed=$((killed + 1))
	fi
	cp "$tmp/.orig" "$file"
done <"$list"

total=$((killed + lived))
echo "killed $killed of $total mutants ($((total > 0 ? 100 * killed / total : 0))%), lived $lived, stale $stale"
[ "$stale" -eq 0 ]
