/**
 * The OCI runtime run from a sealed in-memory copy of its binary.
 *
 * youki and runc defend against CVE-2019-5736 (a container overwriting the
 * runtime's binary through /proc/self/exe) in the same way: at start they
 * check whether their executable is a memfd sealed against every change
 * (F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE); when it is not,
 * they copy themselves into one and re-execute. For youki's 11 MB binary that
 * copy is most of the cost of every call (measured here: `youki list` 13.2 ms
 * from /usr/local/bin, 2.2 ms from a sealed copy).
 *
 * So rkl makes that sealed copy once per process and per binary, and runs the
 * runtime (itself, or through conmon) as /proc/PID/fd/N. The runtime sees a
 * sealed executable and skips its own copy. What a container can reach is
 * the same as before: a memfd nobody can write, shrink or grow while it
 * exists. The copy is kept with the CLOEXEC flag, so no child inherits the
 * descriptor; the path is opened afresh by whoever executes it.
 *
 * Records and messages keep naming the real binary; only the exec path
 * changes. Whenever the binary on disk changes (an upgrade), the next call
 * makes a new copy. Where a memfd cannot be made (no FFI, an old kernel,
 * memfd exec forbidden by vm.memfd_noexec), the binary is run as it is.
 */
import { cstr, errno, libc } from "../sys/libc.ts";

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
/** Linux 6.3+: the memfd may be executed even when vm.memfd_noexec=1. */
const MFD_EXEC = 0x10;
const O_RDONLY_CLOEXEC = 0o2000000;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
export const ALL_SEALS = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE
const EINVAL = 22;

interface Copy {
  /** dev, inode, size and mtime of the binary the copy was made from. */
  key: string;
  path: string;
}

const copies = new Map<string, Copy>();

function identity(st: Deno.FileInfo): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtime?.getTime()}`;
}

/**
 * The path to execute for `binary`: a sealed copy when one can be made,
 * `binary` itself otherwise. Costs one stat once the copy exists.
 */
export function sealedExecutable(binary: string): string {
  if (Deno.build.os !== "linux" || Deno.env.get("RKL_SEALED_RUNTIME") === "0") return binary;
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(binary);
  } catch {
    return binary; // the call itself reports the missing binary
  }
  if (!st.isFile) return binary;
  const key = identity(st);
  const have = copies.get(binary);
  if (have?.key === key) return have.path;
  const path = sealCopy(binary, st.size);
  // A copy made before an upgrade stays open: a conmon may be about to run it.
  if (path) copies.set(binary, { key, path });
  return path ?? binary;
}

/** Makes the sealed memfd; its /proc path, or undefined when this host cannot. */
export function sealCopy(binary: string, size: number): string | undefined {
  const open = openCopy(binary);
  if (!open) return undefined;
  const { c, fd, src } = open;
  let path: string | undefined;
  try {
    let copied = 0;
    for (;;) {
      const n = Number(c.sendfile(fd, src, null, BigInt(1 << 30)));
      if (n < 0) return undefined;
      if (n === 0) break;
      copied += n;
    }
    return path = sealed(c, fd, copied, size);
  } finally {
    c.close(src);
    if (path === undefined) c.close(fd);
  }
}

type Libc = ReturnType<typeof libc>;

/** A new memfd for the copy and `binary` opened to read; undefined when this host cannot. */
function openCopy(binary: string): { c: Libc; fd: number; src: number } | undefined {
  let c: Libc;
  try {
    c = libc();
  } catch {
    return undefined; // no --allow-ffi
  }
  const name = cstr(`rkl-sealed:${binary.split("/").pop()}`);
  let fd = c.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno() === EINVAL) fd = c.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return undefined;
  const src = c.open(cstr(binary), O_RDONLY_CLOEXEC, 0);
  if (src < 0) {
    c.close(fd);
    return undefined;
  }
  return { c, fd, src };
}

/** Seals the filled memfd; its /proc path, or undefined (the caller closes fd then). */
function sealed(c: Libc, fd: number, copied: number, size: number): string | undefined {
  // Changed while it was read: run the binary itself this time.
  if (copied !== size) return undefined;
  if (c.fcntl(fd, F_ADD_SEALS, ALL_SEALS) < 0) return undefined;
  if (c.fcntl(fd, F_GET_SEALS, 0) !== ALL_SEALS) return undefined;
  // /proc may belong to another pid namespace than this process: use the
  // path only if it leads back to this very memfd.
  const path = `/proc/${Deno.pid}/fd/${fd}`;
  try {
    if (!Deno.readLinkSync(path).startsWith("/memfd:rkl-sealed:")) return undefined;
  } catch {
    return undefined;
  }
  return path;
}

/** Copies being made by prewarmSealed, by binary. */
const pending = new Map<string, Promise<void>>();

/**
 * Starts the sealed copy of `binary` now, its 11 MB copied by a libc worker
 * thread, for a one-shot command that is about to spend tens of
 * milliseconds loading and checking its input before it runs the runtime
 * (`pod run`, `pod rm`: cli/direct.ts). The copy then costs the command
 * nothing on its critical path, where made on first use it costs about 8 ms
 * of the main thread. sealedReady() waits for it; sealedExecutable() uses
 * it once made (and makes its own if asked before). Best effort.
 */
export function prewarmSealed(binary: string): void {
  if (Deno.build.os !== "linux" || Deno.env.get("RKL_SEALED_RUNTIME") === "0") return;
  if (pending.has(binary) || copies.has(binary)) return;
  const done = copyInBackground(binary).catch(() => {}).finally(() => pending.delete(binary));
  pending.set(binary, done);
}

/** Resolves once no copy started by prewarmSealed is still being made. */
export function sealedReady(): Promise<void> {
  if (pending.size === 0) return Promise.resolve();
  return Promise.all(pending.values()).then(() => {});
}

async function copyInBackground(binary: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(binary);
  } catch {
    return;
  }
  if (!st.isFile) return;
  const open = openCopy(binary);
  if (!open) return;
  const { c, fd, src } = open;
  let path: string | undefined;
  try {
    let copied = 0;
    for (;;) {
      const n = Number(await c.sendfile_async(fd, src, null, BigInt(1 << 30)));
      if (n < 0) return;
      if (n === 0) break;
      copied += n;
    }
    path = sealed(c, fd, copied, st.size);
  } finally {
    c.close(src);
    if (path === undefined) c.close(fd);
  }
  if (path === undefined) return;
  // Kept only if the binary is still the one copied, and no copy was made meanwhile.
  let now: Deno.FileInfo | undefined;
  try {
    now = Deno.statSync(binary);
  } catch { /* removed */ }
  if (now && identity(now) === identity(st) && !copies.has(binary)) {
    copies.set(binary, { key: identity(st), path });
  } else c.close(fd);
}
