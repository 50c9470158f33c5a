#!/usr/bin/env bash
# Builds an OCI bundle rootfs from installed Debian packages.
#   bundles/build.sh busybox DIR   busybox-static with one link per applet
#   bundles/build.sh pause DIR     catatonit, run as `catatonit -P`
# The same recipe is built into rkl as `rkl bundle build KIND DIR`; this script
# exists so setup works before any Deno code has run.
set -euo pipefail
kind=${1:?kind}
dir=${2:?dir}
rootfs="$dir/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,var/www,root,run}
chmod 1777 "$rootfs/tmp"
case "$kind" in
  busybox)
    src=$(command -v busybox || echo /bin/busybox)
    cp "$src" "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
      [ "$applet" = busybox ] && continue
      ln -sf busybox "$rootfs/bin/$applet"
    done
    if [ ! -e "$rootfs/bin/printenv" ]; then
      cat >"$rootfs/bin/printenv" <<'SH'
#!/bin/sh
# printenv for bundles whose busybox lacks the applet (Debian's busybox-static;
# the busybox image on Docker Hub has it): prints the named variables, or all.
# It reads its own starting environment, which also holds names such as
# `discovery.type` that the shell itself does not pass on.
[ $# -eq 0 ] && exec tr '\0' '\n' </proc/$$/environ
rc=0
for v in "$@"; do
  tr '\0' '\n' </proc/$$/environ |
    awk -v n="$v=" 'index($0, n) == 1 { print substr($0, length(n) + 1); f = 1; exit } END { exit !f }' ||
    rc=1
done
exit $rc
SH
      chmod 755 "$rootfs/bin/printenv"
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
    ;;
  pause)
    cp /usr/bin/catatonit "$rootfs/bin/catatonit"
    ;;
  *)
    echo "unknown bundle kind: $kind" >&2
    exit 2
    ;;
esac
echo "built $kind bundle in $dir" >&2
