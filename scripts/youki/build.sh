#!/usr/bin/env bash
# Builds youki $1 from crates.io with rkl's patches to its libcontainer and
# libcgroups (scripts/youki/*.patch) and installs it as $2 (default /usr/local/bin/youki).
#
# Why patched: youki 0.7.0 rebuilds the spec of an exec'd process ("tenant")
# from the namespaces, cgroup path, personality and time offsets only, so a
# process started by `youki exec` runs without the container's seccomp
# profile (Seccomp: 0 in its /proc/self/status), where runc applies it. The
# patch gives the tenant the container's profile; a notify profile (which
# needs the container's state, which a tenant lacks) is the only case left
# as before (libcontainer-exec-seccomp.patch). And on a cgroup v1 or hybrid
# host youki 0.7.0 mounts every hierarchy (and the tmpfs holding them)
# read-write inside the container whatever the cgroup mount's options say,
# so a container could raise its own limits; with "ro" they are read-only,
# as under runc (libcontainer-cgroup-ro.patch). And a container joining a
# shared PID namespace (a pod's) on cgroup v1 had youki read the runtime's
# /proc/<its pid inside the pod>: a missing host pid failed the create, an
# existing one lent its cgroup path (libcontainer-cgroup-v1-joined-pidns.patch).
# And youki, a Rust program, starts with SIGPIPE ignored (Rust's runtime does
# that before main) and execs the container's process, and every exec'd one,
# with it still ignored, so `yes | head` left `yes` failing with EPIPE where
# runc's containers die of SIGPIPE; they now start with SIGPIPE at its
# default, other signals as youki's caller left them but for glibc's internal
# 32 and 33, which glibc's posix_spawn (Deno's, starting conmon) leaves
# ignored (libcontainer-sigpipe-default.patch).
# And youki compiled the seccomp profile with libseccomp on every create and
# exec: 10-12 ms of each `youki create` here for the default profile, about
# half of it. The compiled program now goes in <root>/.seccomp-cache/ (kept
# only while this user owns it and no one else can write it, keyed by the
# profile, libseccomp's version and the kernel, checksummed) and is loaded
# with seccomp(2) directly; notify profiles are compiled as before
# (libcontainer-seccomp-cache.patch).
# And youki run rootless (euid not 0, or uid 0 of a user namespace without
# the full map: libcontainer's rootless_required, rkl's user namespace) on a
# cgroup v1 or hybrid host failed every create making
# /sys/fs/cgroup/cpu/:youki:ID (EACCES): its v1 manager has no rootless mode.
# It now does what runc's cgroupfs manager does for a rootless container
# with no explicit cgroupsPath: a permission error (EACCES, EPERM, EROFS)
# making or joining the cgroups is not fatal when linux.resources sets
# nothing (absent, empty, or only unset fields): the container runs in its
# caller's cgroups, with a warning (shown at --log-level warn). A spec with
# limits still fails, naming them ("cannot apply linux.resources.memory to
# a rootless container on cgroup v1: ..."), so no limit is dropped; device
# rules count as limits here (runc leaves them out rootless, but youki's
# warnings are not shown at its default log level); an explicit
# cgroupsPath still fails, as under runc. A process exec'd into such a container skips only a cgroup
# that does not exist, never one it cannot join; a kill --all or forced
# delete of a container with no cgroup signals its init (runc does the
# same), and a stopped one's not at all (its pid may be reused)
# (libcontainer-rootless-cgroup-v1.patch). scripts/setup.sh then writes
# /usr/local/share/rkl/youki.json (marker.sh), which a rootless rkl reads
# to take youki over runc on cgroup v1.
# And on cgroup v1 every cgroup manager youki made read and parsed
# /proc/self/mountinfo once per controller, each through a new procfs
# handle, and /proc/self/cgroup once per controller too: 24 and 16 reads
# in a `delete --force`. The cgroup mount points are now read once per
# process and /proc/self/cgroup once per manager: `delete --force` takes
# 2-4 ms less here (medians of 25 and 40 alternating runs: 21.7 → 19.4,
# 23.4 → 19.5 ms), `create` (one manager) within the noise
# (libcgroups-v1-mount-points-once.patch).
# And youki made a terminal's PTY at 0x0 whatever the process's consoleSize
# said (runc sizes it from there), so an `exec -it` or `run -it` process saw
# its size only at the first resize, which came after it had started: `rkl
# exec -it C stty size` failed every time from a 123x45 terminal. The PTY is
# now made at consoleSize when the spec gives one
# (libcontainer-console-size.patch).
# Everything else is youki as published.
set -euo pipefail
version="$1"
dest="${2:-/usr/local/bin/youki}"
features="systemd,v1,v2,seccomp"
here="$(cd "$(dirname "$0")" && pwd)"
cargo_bin="${CARGO:-cargo}"
work="$(mktemp -d /var/tmp/rkl-youki.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Fetch the published crates (a bin-only crate can still be fetched as a dependency).
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "rkl-youki-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
youki = "=${version}"
libcontainer = "=${version}"
libcgroups = "=${version}"
TOML
echo 'fn main() {}' >"$work/fetch/src/main.rs"
(cd "$work/fetch" && "$cargo_bin" fetch --quiet)
cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
crate() { find "$cache" -name "$1-${version}.crate" | head -n1; }
tar xzf "$(crate youki)" -C "$work"
tar xzf "$(crate libcontainer)" -C "$work"
tar xzf "$(crate libcgroups)" -C "$work"
for p in "$here"/libcontainer-*.patch; do
  patch -d "$work/libcontainer-${version}" -p1 --quiet --forward <"$p"
done
for p in "$here"/libcgroups-*.patch; do
  patch -d "$work/libcgroups-${version}" -p1 --quiet --forward <"$p"
done
printf '\n[patch.crates-io]\nlibcontainer = { path = "../libcontainer-%s" }\nlibcgroups = { path = "../libcgroups-%s" }\n' \
  "$version" "$version" >>"$work/youki-${version}/Cargo.toml"
(cd "$work/youki-${version}" && "$cargo_bin" build --quiet --release --features "$features")
install -m 0755 "$work/youki-${version}/target/release/youki" "$dest"
