#!/usr/bin/env bash
# Installs everything rkl needs on a Debian host, as root. Idempotent: each
# step checks before it acts, so a second run only rebuilds the bundles.
#
#   bash scripts/setup.sh            # everything
#   RKL_SKIP_YOUKI=1 bash scripts/setup.sh   # skip the (slow) youki build
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DENO_VERSION=2.9.6
YOUKI_VERSION=0.7.0

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "run me as root (sudo bash scripts/setup.sh)"
  exit 1
fi

# 1. Debian packages: the real parts rkl drives, plus youki's build deps.
debs=(runc containernetworking-plugins iptables iproute2 busybox-static catatonit conmon
  pkg-config libsystemd-dev libseccomp-dev libelf-dev libclang-dev libssl-dev build-essential
  ca-certificates util-linux systemd patch
  qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross
  docker-registry skopeo umoci libdeflate0
  containerd buildah attr zstd xz-utils openssl prometheus
  tmux uidmap slirp4netns passt fuse-overlayfs bzip2 curl)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # containerd is here for the unpack differential test, which runs its own
  # on a private root and socket: the packaged service is not wanted.
  if [[ " ${missing[*]} " == *" containerd "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
  fi
  # prometheus is here for the metrics e2e test, which runs its own with a
  # private config and data dir: the packaged service is not wanted either.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# 2. Deno from npm (JSR and dl.deno.land are not reachable from these hosts).
if ! command -v deno >/dev/null 2>&1 || ! deno --version | grep "^deno ${DENO_VERSION} " >/dev/null; then
  command -v npm >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  }
  log "installing deno ${DENO_VERSION} from npm"
  npm install -g "deno@${DENO_VERSION}" >/dev/null
fi

# 3. youki, the default OCI runtime, from crates.io with cgroup v1+v2 support.
#    A plain `cargo install youki` builds it without any cgroup manager.
if [ -z "${RKL_SKIP_YOUKI:-}" ]; then
  cargo_bin=""
  if command -v cargo >/dev/null 2>&1; then cargo_bin=$(command -v cargo);
  elif [ -x "$HOME/.cargo/bin/cargo" ]; then cargo_bin="$HOME/.cargo/bin/cargo"; fi
  # rkl's patches (scripts/youki/) are part of what is installed: a youki
  # built without them is rebuilt. The marker names the patches' checksum.
  patches_sum=$(cat "$here"/scripts/youki/*.patch "$here"/scripts/youki/build.sh | sha256sum | cut -c1-16)
  marker="/usr/local/share/rkl/youki-${YOUKI_VERSION}-${patches_sum}"
  if [ -x /usr/local/bin/youki ] && /usr/local/bin/youki --version 2>/dev/null | grep "${YOUKI_VERSION}" >/dev/null \
    && [ -f "$marker" ]; then
    :
  elif [ -n "$cargo_bin" ]; then
    log "building youki ${YOUKI_VERSION} with rkl's patches (features systemd,v1,v2,seccomp); this takes a few minutes"
    CARGO="$cargo_bin" bash "$here/scripts/youki/build.sh" "${YOUKI_VERSION}" /usr/local/bin/youki
    mkdir -p "$(dirname "$marker")"
    rm -f /usr/local/share/rkl/youki-*
    : >"$marker"
    # What rkl reads to know that this very file is its build
    # (src/oci/youki_marker.ts): a rootless rkl on cgroup v1 takes youki
    # over runc only then. Written only right after the build it describes.
    bash "$here/scripts/youki/marker.sh" /usr/local/bin/youki /usr/local/share/rkl/youki.json
  else
    log "cargo not found: youki is not installed, rkl will use runc"
  fi
fi

# 4. Bundles: rootfs trees built from the installed packages.
bash "$here/bundles/build.sh" busybox "$here/bundles/busybox"
bash "$here/bundles/build.sh" pause "$here/bundles/pause"
# Upstream busybox 1.37.0 (static, its pinned release tarball) for the node
# e2e stand-in images; cached in /var/cache/rkl-busybox, about 45 s once.
bash "$here/scripts/busybox.sh" >/dev/null

# 5. crictl and critest (cri-tools v1.36.0): no registry here serves them, so
#    they come from the workplace's shared tools dir (built from the upstream
#    tag; see its README), checked against the sha256 sums pinned here.
cri_tools=""
for d in "${RKL_CRI_TOOLS:-}" "$here/../shared/cri-tools" /work/shared/cri-tools; do
  if [ -n "$d" ] && [ -x "$d/crictl" ]; then cri_tools=$d; break; fi
done
if [ -n "$cri_tools" ]; then
  while read -r sum tool; do
    if [ "$(sha256sum "$cri_tools/$tool" | cut -d' ' -f1)" != "$sum" ]; then
      echo "setup: $cri_tools/$tool does not match its pinned sha256" >&2
      exit 1
    fi
    install -m 0755 "$cri_tools/$tool" "/usr/local/bin/$tool"
  done <<'SUMS'
1d57261bc3a2240b27f1a56bb6c8a22a20a02ac8e7ff4c63ba4a606d75fc437c crictl
61b882c117edac0d269bb2e31a628f5b8ded05932e311b9222267efcc30311cd critest
SUMS
else
  log "cri-tools not found (set RKL_CRI_TOOLS): the CRI tests need crictl and critest"
fi

# 6. kubelet v1.36.3 (static), the real CRI client of tests/e2e/kubelet_test.ts:
#    also from the shared tools dir, checked against its pinned sha256.
kubelet_dir=""
for d in "${RKL_KUBELET_DIR:-}" "$here/../shared/kubelet" /work/shared/kubelet; do
  if [ -n "$d" ] && [ -x "$d/kubelet" ]; then kubelet_dir=$d; break; fi
done
if [ -n "$kubelet_dir" ]; then
  if [ "$(sha256sum "$kubelet_dir/kubelet" | cut -d' ' -f1)" != \
    863e5f32844b794cfc673682fb215a133e5cbef1a6bd718d3e0a109612d4a5aa ]; then
    echo "setup: $kubelet_dir/kubelet does not match its pinned sha256" >&2
    exit 1
  fi
  install -m 0755 "$kubelet_dir/kubelet" /usr/local/bin/kubelet
else
  log "kubelet not found (set RKL_KUBELET_DIR): the kubelet test needs it"
fi

# 7. Dependencies of the Deno code (npm packages, pinned by deno.lock).
(cd "$here" && deno install --frozen >/dev/null)

log "ok: deno $(deno --version | head -n1 | cut -d' ' -f2), runtimes: $(for r in youki runc crun; do command -v $r >/dev/null && printf '%s ' $r; done)"
