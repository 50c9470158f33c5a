/**
 * Whether a youki binary is rkl's patched build, read from the marker that
 * scripts/setup.sh writes when it installs one (scripts/youki/marker.sh):
 * /usr/local/share/rkl/youki.json names the binary, its identity (st_dev,
 * st_ino, size, mtime in seconds) and the patches it was built with. The
 * identity is what is compared (a symlink to the binary, or another PATH
 * spelling of it, is the same file); a youki replaced or rebuilt since
 * (another inode, size or mtime) no longer matches, nor does a marker someone else could have written (not a regular
 * file, owned by neither root nor this user, or writable by group or
 * others). Costs two stats and one small read; no process is started.
 *
 * No import: cli/rootless_early.ts, loaded first thing by a rootless
 * command, uses it.
 */

export const YOUKI_MARKER = "/usr/local/share/rkl/youki.json";

/** The patch that lets youki run rootless on cgroup v1 (scripts/youki/). */
export const ROOTLESS_V1_PATCH = "libcontainer-rootless-cgroup-v1";

/** What youkiPatches() reads of the host. */
export interface MarkerPorts {
  lstat(path: string): Deno.FileInfo | undefined;
  stat(path: string): Deno.FileInfo | undefined;
  read(path: string): string | undefined;
  uid: number;
}

export const realMarkerPorts: MarkerPorts = {
  lstat: (p) => {
    try {
      return Deno.lstatSync(p);
    } catch {
      return undefined;
    }
  },
  stat: (p) => {
    try {
      return Deno.statSync(p);
    } catch {
      return undefined;
    }
  },
  read: (p) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return undefined;
    }
  },
  get uid() {
    return Deno.uid() ?? -1;
  },
};

/**
 * The names of rkl's patches `binary` was built with, from the marker; an
 * empty list when the marker is missing, untrusted, malformed, or describes
 * another file or another build of it.
 */
export function youkiPatches(
  binary: string,
  ports: MarkerPorts = realMarkerPorts,
  marker = YOUKI_MARKER,
): string[] {
  const m = ports.lstat(marker);
  if (!m?.isFile || ((m.mode ?? 0o777) & 0o022) !== 0) return [];
  if (m.uid !== 0 && m.uid !== ports.uid) return [];
  let rec: Record<string, unknown>;
  try {
    const v = JSON.parse(ports.read(marker) ?? "");
    if (typeof v !== "object" || v === null || Array.isArray(v)) return [];
    rec = v;
  } catch {
    return [];
  }
  if (!Array.isArray(rec.patches)) return [];
  const st = ports.stat(binary);
  if (!st?.isFile || !st.mtime) return [];
  const same = rec.dev === st.dev && rec.ino === st.ino && rec.size === st.size &&
    rec.mtime === Math.floor(st.mtime.getTime() / 1000);
  return same ? rec.patches.filter((p): p is string => typeof p === "string") : [];
}

/** True when `binary` is rkl's youki with the rootless cgroup v1 patch. */
export function youkiRunsRootlessOnV1(
  binary: string,
  ports?: MarkerPorts,
  marker?: string,
): boolean {
  return youkiPatches(binary, ports, marker).includes(ROOTLESS_V1_PATCH);
}
