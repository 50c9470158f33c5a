/**
 * User and group names (compose `user: app:staff`) resolved the way docker
 * does: through the image's own /etc/passwd and /etc/group, never the
 * host's. The files are opened beneath the bundle's rootfs without following
 * any symlink (a bundle's /etc/passwd linking to the host's is not read).
 */
import { FieldError } from "../errors.ts";
import type { ContainerSpec } from "../spec/container.ts";
import { openBeneath } from "../sys/subpath.ts";
import type { Syscalls } from "../sys/syscalls.ts";
import { type HostFs, realFs } from "../sys/fs.ts";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

/** name:x:uid:gid:... lines; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  return text.split("\n").map((l) => l.split(":")).filter((f) =>
    f.length >= 4 && f[0] !== "" && /^\d+$/.test(f[2]) && /^\d+$/.test(f[3])
  ).map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]) }));
}

/** name:x:gid:... lines. */
export function parseGroup(text: string): { name: string; gid: number }[] {
  return text.split("\n").map((l) => l.split(":")).filter((f) =>
    f.length >= 3 && f[0] !== "" && /^\d+$/.test(f[2])
  ).map((f) => ({ name: f[0], gid: Number(f[2]) }));
}

/**
 * uid/gid for names; a name that the files do not hold is a FieldError at
 * the names' field path (the request's root when they give none).
 */
export function resolveNames(
  names: NonNullable<ContainerSpec["userNames"]>,
  given: { uid?: number; gid?: number },
  files: { passwd?: string; group?: string; where: string },
): { uid: number; gid: number } {
  const path = names.path ?? [];
  let uid = given.uid ?? 0;
  let gid = given.gid;
  if (names.user !== undefined) {
    const u = parsePasswd(files.passwd ?? "").find((e) => e.name === names.user);
    if (!u) {
      throw new FieldError(
        path,
        `user ${JSON.stringify(names.user)} is not in ${files.where}/etc/passwd`,
      );
    }
    uid = u.uid;
    gid ??= u.gid;
  }
  if (names.group !== undefined) {
    const g = parseGroup(files.group ?? "").find((e) => e.name === names.group);
    if (!g) {
      throw new FieldError(
        path,
        `group ${JSON.stringify(names.group)} is not in ${files.where}/etc/group`,
      );
    }
    gid = g.gid;
  }
  return { uid, gid: gid ?? 0 };
}

/** Reads etc/passwd and etc/group beneath `rootfs` (undefined where absent or a link). */
export function readUserFiles(
  sys: Syscalls,
  rootfs: string,
  fs: HostFs = realFs,
): { passwd?: string; group?: string } {
  const read = (rel: string) => {
    let fd: number;
    try {
      fd = openBeneath(sys, rootfs, rel, { create: false });
    } catch {
      return undefined;
    }
    try {
      // The fd is this process's own, opened through FFI (openat beneath the rootfs).
      return fs.readTextFile(`/proc/self/fd/${fd}`);
    } catch {
      return undefined;
    } finally {
      sys.close(fd);
    }
  };
  return { passwd: read("etc/passwd"), group: read("etc/group") };
}
