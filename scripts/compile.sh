#!/usr/bin/env bash
# `deno compile` of rkl for one target:
#
#   bash scripts/compile.sh APP_DIR TARGET OUTPUT [deno compile flags...]
#
# APP_DIR holds deno.json, deno.lock, cli/ and src/ (the repo, or dist.sh's
# copy). deno.json turns on "lazy-dynamic-imports" for `deno run`: the
# modules behind import() are then read when the import runs, not at start,
# so a thin client or `rkl --version` no longer reads the whole command tree
# first (21 ms -> 15 ms here). But a code-only module graph built with that
# flag leaves those modules out, and `deno compile` builds its binary from
# such a graph: the binary would lack every command. So compile reads a copy
# of deno.json without that one entry (written beside it, for deno.lock and
# the import map to resolve the same), removed again afterwards. A compiled
# binary needs no such flag: its modules come from the binary itself.
set -euo pipefail

app=$(cd "$1" && pwd)
target=$2
output=$3
shift 3
conf="$app/.deno.compile.json"
trap 'rm -f "$conf"' EXIT
deno eval --no-config '
  const [from, to] = Deno.args;
  const conf = JSON.parse(Deno.readTextFileSync(from));
  const unstable = (conf.unstable ?? []).filter((f) => f !== "lazy-dynamic-imports");
  if (unstable.length > 0) conf.unstable = unstable;
  else delete conf.unstable;
  Deno.writeTextFileSync(to, JSON.stringify(conf, null, 2) + "\n");
' "$app/deno.json" "$conf"
cd "$app"
deno compile -A --config "$conf" --lock deno.lock "$@" --target "$target" -o "$output" cli/main.ts
