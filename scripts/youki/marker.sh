#!/usr/bin/env bash
# Writes MARKER ($2, default /usr/local/share/rkl/youki.json): the youki at
# BINARY ($1) is rkl's build with the patches in this directory. rkl reads
# it (src/oci/youki_marker.ts) to know whether the installed youki can run
# rootless on cgroup v1 (libcontainer-rootless-cgroup-v1.patch); the
# binary's identity (st_dev, st_ino, size, mtime) ties the marker to that
# very file, so a youki replaced later is not taken for rkl's.
# scripts/setup.sh calls it right after scripts/youki/build.sh.
set -euo pipefail
bin="$1"
out="${2:-/usr/local/share/rkl/youki.json}"
here="$(cd "$(dirname "$0")" && pwd)"
case "$bin" in
  /*) ;;
  *) echo "marker.sh: $bin: not an absolute path" >&2; exit 2 ;;
esac
if [[ "$bin" =~ [\"\\[:cntrl:]] ]]; then
  echo "marker.sh: $bin: a quote, backslash or control character in the path" >&2
  exit 2
fi
read -r dev ino size mtime < <(stat -L -c '%d %i %s %Y' -- "$bin")
patches=""
for p in "$here"/libcontainer-*.patch "$here"/libcgroups-*.patch; do
  patches="${patches:+$patches,}\"$(basename "$p" .patch)\""
done
mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$(dirname "$out")/.youki.json.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
printf '{"binary":"%s","dev":%s,"ino":%s,"size":%s,"mtime":%s,"patches":[%s]}\n' \
  "$bin" "$dev" "$ino" "$size" "$mtime" "$patches" >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
