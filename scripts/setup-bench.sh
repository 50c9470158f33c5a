#!/usr/bin/env bash
# What `deno task bench` needs beyond scripts/setup.sh: the peers it compares
# rkl with (podman, podman-compose from Debian). Idempotent.
set -euo pipefail
missing=()
for p in podman podman-compose netavark; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
