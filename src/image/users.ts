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
import { FileReadError } from "../sys/readfile.ts";

/** An image's or a container's etc/passwd and etc/group, as read for name resolution. */
export interface UserFiles {
  passwd?: string;
  group?: string;
  /** Why a file that is there was not read (`not a regular file (a FIFO)`, `larger than …`). */
  unreadable?: { passwd?: string; group?: string };
}

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
  files: UserFiles & { where: string },
): { uid: number; gid: number } {
  const path = names.path ?? [];
  const missing = (kind: "user" | "group", name: string, file: "passwd" | "group") => {
    const why = files.unreadable?.[file];
    return new FieldError(
      path,
      why
        ? `${kind} ${JSON.stringify(name)}: ${files.where}/etc/${file} cannot be read: ${why}`
        : `${kind} ${JSON.stringify(name)} is not in ${files.where}/etc/${file}`,
    );
  };
  let uid = given.uid ?? 0;
  let gid = given.gid;
  if (names.user !== undefined) {
    const u = parsePasswd(files.passwd ?? "").find((e) => e.name === names.user);
    if (!u) throw missing("user", names.user, "passwd");
    uid = u.uid;
    gid ??= u.gid;
  }
  if (names.group !== undefined) {
    const g = parseGroup(files.group ?? "").find((e) => e.name === names.group);
    if (!g) throw missing("group", names.group, "group");
    gid = g.gid;
  }
  return { uid, gid: gid ?? 0 };
}

/** The largest etc/passwd or etc/group read (a larger one counts as absent). */
const MAX_USER_FILE = 4 * 1024 * 1024;

/** Reads etc/passwd and etc/group beneath `rootfs` (undefined where absent or a link). */
export function readUserFiles(
  sys: Syscalls,
  rootfs: string,
  fs: HostFs = realFs,
): UserFiles {
  const unreadable: NonNullable<UserFiles["unreadable"]> = {};
  const read = (rel: "passwd" | "group") => {
    let fd: number;
    try {
      fd = openBeneath(sys, rootfs, `etc/${rel}`, { create: false });
    } catch {
      return undefined;
    }
    try {
      // The fd is this process's own, opened through FFI (openat beneath the rootfs). The file
      // is the image's or the container's: a FIFO there would block a plain read for good (a
      // daemon's whole event loop), a device or a huge file would flood it.
      return fs.readRegularText(`/proc/self/fd/${fd}`, MAX_USER_FILE);
    } catch (e) {
      if (e instanceof FileReadError) unreadable[rel] = e.reason;
      return undefined;
    } finally {
      sys.close(fd);
    }
  };
  const out: UserFiles = { passwd: read("passwd"), group: read("group") };
  if (unreadable.passwd || unreadable.group) out.unreadable = unreadable;
  return out;
}
