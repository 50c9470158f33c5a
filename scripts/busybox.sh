#!/usr/bin/env bash
# Builds upstream busybox 1.37.0 for the node e2e suite's stand-in images
# (tests/_helpers/node_images.ts): the release tarball as busybox.net ships it
# (Debian's pool serves it unchanged as the .orig tarball; its sha256 is
# pinned here), no distribution patches, upstream's `make defconfig` with the
# settings docker-library's busybox image adds to it, linked statically.
# Debian's busybox-static (bundles/busybox) is not upstream's: it drops
# environment variables whose names are not shell identifiers (a Debian
# patch), and its nc has no -u.
#
#   bash scripts/busybox.sh          # build unless cached; prints the binary's path
#   bash scripts/busybox.sh --path   # prints the path if built, else exits 1
#
# The binary is cached in $RKL_BUSYBOX_CACHE (/var/cache/rkl-busybox) under
# the tarball's sha256 and this recipe's checksum. RKL_BUSYBOX_TARBALL names a
# local copy of the tarball (checked against the same sha256) for hosts
# without network. Build deps (Debian): gcc, make, libc6-dev (static libc.a),
# bzip2, curl. About 45 s on 2 cores.
set -euo pipefail

VERSION=1.37.0
SHA256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
URL="http://deb.debian.org/debian/pool/main/b/busybox/busybox_${VERSION}.orig.tar.bz2"

cache=${RKL_BUSYBOX_CACHE:-/var/cache/rkl-busybox}
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dest="$cache/$SHA256/$recipe"

fail() {
  printf 'busybox.sh: %s\n' "$*" >&2
  exit 1
}

if [ "${1:-}" = --path ]; then
  [ -x "$dest/busybox" ] || fail "busybox $VERSION is not built in $dest (run scripts/setup.sh or scripts/busybox.sh)"
  echo "$dest/busybox"
  exit 0
fi
[ $# -eq 0 ] || fail "usage: busybox.sh [--path]"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -x "$dest/busybox" ]; then
  echo "$dest/busybox"
  exit 0
fi

tarball="$cache/busybox_${VERSION}.orig.tar.bz2"
sum() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f "$tarball" ] || [ "$(sum "$tarball")" != "$SHA256" ]; then
  if [ -n "${RKL_BUSYBOX_TARBALL:-}" ]; then
    cp "$RKL_BUSYBOX_TARBALL" "$tarball.part"
  else
    curl -fsSL --retry 3 -o "$tarball.part" "$URL" || fail "could not download $URL"
  fi
  got=$(sum "$tarball.part")
  [ "$got" = "$SHA256" ] || { rm -f "$tarball.part"; fail "busybox tarball sha256 is $got, want $SHA256"; }
  mv "$tarball.part" "$tarball"
fi

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xjf "$tarball" -C "$work"
src="$work/busybox-$VERSION"
[ -f "$src/Makefile" ] || fail "the tarball has no busybox-$VERSION/Makefile"
cd "$src"
# The build date busybox prints comes from the tarball, so a rebuild is the same binary.
SOURCE_DATE_EPOCH=$(stat -c %Y Makefile)
export SOURCE_DATE_EPOCH

log="$work/build.log"
make defconfig >"$log" 2>&1 || { tail -n 30 "$log" >&2; fail "make defconfig failed"; }
# docker-library/busybox's changes to defconfig (its Dockerfile.builder), plus
# CONFIG_STATIC: its glibc variant links dynamically to carry libnss, which
# this image does not need (glibc >= 2.34 has files and dns NSS built in).
set_confs="CONFIG_STATIC=y CONFIG_AR=y CONFIG_FEATURE_AR_CREATE=y CONFIG_FEATURE_AR_LONG_FILENAMES=y
  CONFIG_LAST_SUPPORTED_WCHAR=0 CONFIG_INOTIFYD=y"
unset_confs="CONFIG_FEATURE_SYNC_FANCY"
for c in $unset_confs; do sed -i "s/^$c=.*/# $c is not set/" .config; done
for cv in $set_confs; do
  c=${cv%%=*}
  sed -i -e "s/^$c=.*/$cv/" -e "s/^# $c is not set\$/$cv/" .config
  grep -qx "$cv" .config || echo "$cv" >>.config
done
make oldconfig </dev/null >>"$log" 2>&1 || { tail -n 30 "$log" >&2; fail "make oldconfig failed"; }
for c in $unset_confs; do ! grep -q "^$c=" .config || fail ".config still sets $c"; done
for cv in $set_confs CONFIG_NC_110_COMPAT=y CONFIG_NMETER=y; do
  grep -qx "$cv" .config || fail ".config lacks $cv"
done

start=$(date +%s)
make -j"$(nproc)" busybox >>"$log" 2>&1 || { tail -n 40 "$log" >&2; fail "make busybox failed (log above)"; }
# Static, and with what the stand-ins need it for: upstream's ash keeps
# environment variables whose names are not identifiers, nc has -u.
if readelf -l busybox | grep -q 'program interpreter'; then fail "busybox is not static"; fi
[ "$(env 'data-1=value-1' ./busybox sh -c env | grep '^data-1=')" = data-1=value-1 ] ||
  fail "the built busybox's sh drops data-1 from its environment"
./busybox nc --help 2>&1 | grep -q -- '-u.*UDP' || fail "the built busybox's nc has no -u"

mkdir -p "$dest"
cp .config "$dest/config"
cp busybox "$dest/busybox.part"
mv "$dest/busybox.part" "$dest/busybox"
printf 'busybox.sh: built busybox %s in %ss: %s\n' "$VERSION" "$(($(date +%s) - start))" "$dest/busybox" >&2
echo "$dest/busybox"
