#!/usr/bin/env bash
# Builds one self-contained rkl file per architecture:
#   dist/rkl-x86_64-linux  dist/rkl-aarch64-linux
#
#   bash scripts/dist.sh [OUT_DIR]
#
# Where `deno compile` can run (DENORT_BIN set to a denort for the host's
# architecture), the host's artifact is a real compiled binary. Otherwise,
# and always for the other architecture, it is a self-extracting file, the
# way k3s ships one binary holding its parts: a small sh launcher followed by
# a tar.gz of the Deno runtime for that architecture (npm's
# @deno/linux-x64-glibc or @deno/linux-arm64-glibc), rkl's code and its npm
# dependencies already cached. The launcher unpacks it once, checksum
# verified, into ROOT/dist/VERSION-SUM (ROOT: --root, RKL_ROOT or
# /var/lib/rkl), atomically (a rename; a second starter that loses the race
# throws its copy away), and runs it with --cached-only: no network.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$here/dist}
DENO_VERSION=$(deno --version | sed -n 's/^deno \([0-9.]*\) .*/\1/p')
version=$(sed -n 's/^export const VERSION = "\(.*\)";/\1/p' "$here/cli/version.ts")
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$here/dist/.cache"
log() { printf 'dist: %s\n' "$*" >&2; }

# 1. rkl's code, with the commit written in.
app="$work/app"
mkdir -p "$app/bundles"
cp -r "$here/cli" "$here/src" "$here/deno.json" "$here/deno.lock" "$app/"
cp "$here/bundles/build.sh" "$app/bundles/"
find "$app" -name '*_test.ts' -delete
sed -i "s/^export const COMMIT = \"dev\";/export const COMMIT = \"$commit\";/" "$app/cli/build_info.ts"

# 2. Its npm dependencies, cached the way `deno run --cached-only` reads them.
log "caching dependencies"
DENO_DIR="$work/deno_dir" deno cache --quiet --frozen --config "$app/deno.json" \
  $(find "$app/cli" "$app/src" -name '*.ts' | sort)

for arch in x86_64 aarch64; do
  case $arch in
    x86_64) npm_pkg=linux-x64-glibc; target=x86_64-unknown-linux-gnu ;;
    aarch64) npm_pkg=linux-arm64-glibc; target=aarch64-unknown-linux-gnu ;;
  esac
  artifact="$out/rkl-$arch-linux"
  if [ -n "${DENORT_BIN:-}" ] && [ "$(uname -m)" = "$arch" ]; then
    log "$artifact: deno compile (DENORT_BIN=$DENORT_BIN)"
    bash "$here/scripts/compile.sh" "$app" "$target" "$artifact" --frozen
    continue
  fi
  # 3. The Deno runtime for that architecture, from npm (cached between builds).
  tgz="$here/dist/.cache/deno-$npm_pkg-$DENO_VERSION.tgz"
  if [ ! -s "$tgz" ]; then
    log "fetching @deno/$npm_pkg@$DENO_VERSION from npm"
    (cd "$work" && npm pack --silent "@deno/$npm_pkg@$DENO_VERSION" >/dev/null)
    mv "$work/deno-$npm_pkg-$DENO_VERSION.tgz" "$tgz"
  fi
  payload="$work/payload-$arch"
  mkdir -p "$payload"
  tar -xzf "$tgz" -C "$work" package/deno
  mv "$work/package/deno" "$payload/deno"
  cp -r "$app" "$work/deno_dir" "$payload/"
  # 4. launcher + tar.gz; the launcher knows the payload's checksum and line.
  tar -czf "$work/payload-$arch.tgz" -C "$payload" .
  sum=$(sha256sum "$work/payload-$arch.tgz" | cut -c1-64)
  sed -e "s/@VERSION@/$version/" -e "s/@COMMIT@/$commit/" -e "s/@SUM@/$sum/" -e "s/@ARCH@/$arch/" \
    "$here/scripts/launcher.sh" >"$work/launcher"
  lines=$(($(wc -l <"$work/launcher") + 1))
  sed -i "s/@LINE@/$lines/" "$work/launcher"
  cat "$work/launcher" "$work/payload-$arch.tgz" >"$artifact.tmp"
  chmod 755 "$artifact.tmp"
  mv "$artifact.tmp" "$artifact"
  log "$artifact: $(du -h "$artifact" | cut -f1) (self-extracting, runtime deno $DENO_VERSION $arch)"
done
