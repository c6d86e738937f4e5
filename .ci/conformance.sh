#!/usr/bin/env bash
# The conformance check: `mission validate` on every file of the RustChain conformance set
# must reach the verdict the reference RustChain v0.1.0 gave (verdicts.tsv), and every
# refusal must name the file. Usage: .ci/conformance.sh [MISSION_BINARY] [CONFORMANCE_DIR]
set -euo pipefail
bin=${1:-target/debug/mission}
dir=${2:-../shared/conformance/rustchain}
[ -x "$bin" ] || { echo "conformance: no mission binary at $bin (cargo build -p mission-cli)"; exit 1; }
[ -f "$dir/verdicts.tsv" ] || { echo "conformance: no verdicts.tsv in $dir"; exit 1; }

agree=0; disagree=0
while IFS=$'\t' read -r file expected; do
  case "$file" in ''|'#'*) continue ;; esac
  if out=$("$bin" validate "$dir/$file" 2>&1); then got=valid; else got=invalid; fi
  if [ "$got" != "$expected" ]; then
    disagree=$((disagree + 1))
    echo "DISAGREE $file: RustChain says $expected, we say $got: $out"
  elif [ "$got" = invalid ] && ! grep -qE -- "$file(:[0-9]+)?: error: " <<<"$out"; then
    disagree=$((disagree + 1))
    echo "UNCLEAR $file: refused, but the message does not name the file: $out"
  else
    agree=$((agree + 1))
  fi
done < "$dir/verdicts.tsv"
echo "conformance: $agree agree, $disagree disagree"
[ "$disagree" -eq 0 ]
