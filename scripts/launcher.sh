#!/bin/sh
# rkl @VERSION@ (@COMMIT@) for @ARCH@ Linux: a self-extracting file made by
# scripts/dist.sh. Below this script is a tar.gz holding the Deno runtime,
# rkl's code and its cached npm dependencies. It is unpacked once, checked
# against its sha256, into ROOT/dist/@VERSION@-SUM12 and run from there with
# no network access.
set -eu
sum=@SUM@
self=$(readlink -f "$0")

# The state root: --root DIR / --root=DIR, RKL_ROOT, /var/lib/rkl.
root=${RKL_ROOT:-/var/lib/rkl}
prev=""
for a in "$@"; do
  case "$prev" in --root) root=$a ;; esac
  case "$a" in --root=*) root=${a#--root=} ;; esac
  prev=$a
done
case "$root" in /*) ;; *) root="$PWD/$root" ;; esac
base="$root/dist"
dir="$base/@VERSION@-$(printf %.12s "$sum")"

if [ ! -x "$dir/deno" ]; then
  mkdir -p "$base"
  chmod 700 "$root" 2>/dev/null || true
  tmp=$(mktemp -d "$base/.unpack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT INT TERM
  tail -n +@LINE@ "$self" >"$tmp/payload.tgz"
  if ! echo "$sum  $tmp/payload.tgz" | sha256sum -c --status; then
    echo "rkl: $self is damaged (its payload does not match sha256 $sum); download it again" >&2
    exit 1
  fi
  tar -xzf "$tmp/payload.tgz" -C "$tmp"
  rm -f "$tmp/payload.tgz"
  chmod 755 "$tmp"
  # Atomic: whoever renames first wins; a loser's copy goes.
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  trap - EXIT INT TERM
fi

export DENO_DIR="$dir/deno_dir" DENO_NO_UPDATE_CHECK=1 RKL_SELF="$self"
# RKL_DIST_WRAPPER runs the runtime under an emulator (qemu-aarch64-static), for testing.
# The daemon's unit sets RKL_DAEMON_DENO_FLAGS=1: src/daemon/launch.ts's DAEMON_DENO_FLAGS.
daemon_flags=
if [ "${RKL_DAEMON_DENO_FLAGS:-}" = 1 ]; then daemon_flags=--no-code-cache; fi
exec ${RKL_DIST_WRAPPER:-} "$dir/deno" run -A --cached-only --frozen --no-prompt $daemon_flags \
  --config "$dir/app/deno.json" "$dir/app/cli/main.ts" "$@"
exit 1
