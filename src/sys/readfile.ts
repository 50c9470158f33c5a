/**
 * Reading a file that a user or a spec named: a pod or compose file, a
 * `--configmap`, an `env_file`, `.env`, a compose config or secret, a
 * seccomp profile, registries.conf, auth.json, a static pod manifest. Such a
 * name may point at /dev/zero, /dev/urandom or a FIFO nobody writes: read
 * whole, the first two grow memory until the kernel kills rkl, the third
 * blocks it (and, in the daemon, every command the daemon serves).
 *
 * So the file is opened first, with O_NONBLOCK (opening a FIFO for reading
 * then never waits for a writer) and optionally O_NOFOLLOW, and the opened
 * handle is fstat'ed: anything but a regular file is refused without one
 * byte read. A regular file is read up to `max` bytes, and refused when it
 * holds more (one byte past `max` is read to tell). No stat-then-open: what
 * is checked is what is read.
 *
 * The open is libc's open(2) through FFI (Deno.open has no O_NONBLOCK),
 * the check a stat of /proc/self/fd/N (the opened inode itself), and the
 * read a Deno file opened through that same /proc/self/fd/N once the inode
 * is known to be a regular file. node:fs would do the same, but loading it
 * costs a command 30-50 ms of Deno's Node layer on this 2-core host; it is
 * used only where FFI is not granted (the unit tests' permission set).
 */
import type { Stats } from "node:fs";
import { RklError } from "../errors.ts";
import { concat } from "../bytes.ts";
import { cstr, errno, libc } from "./libc.ts";

const ffi = (() => {
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
})();
/** node:fs, only without FFI (see above). */
const nodeFs = ffi ? undefined : await import("node:fs");

// Linux's open(2) flags and errnos (the same on x86_64 and aarch64).
const O_RDONLY = 0, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, O_NOFOLLOW = 0o400000;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  6: "ENXIO",
  13: "EACCES",
  20: "ENOTDIR",
  40: "ELOOP",
};

export const KiB = 1 << 10;
export const MiB = 1 << 20;

/** The cap on YAML specs, env files, configs, secrets and config files rkl reads. */
export const MAX_INPUT_BYTES = MiB;

export interface ReadBoundedOptions {
  /** Most bytes accepted; a file holding more is refused. */
  max: number;
  /** Follow a symlink at the last component (default true); false opens with O_NOFOLLOW. */
  follow?: boolean;
}

/** Why a named file cannot be read: `Cannot read PATH: REASON`. */
export class FileReadError extends RklError {
  constructor(
    readonly path: string,
    /** `not a regular file (a FIFO)`, `larger than 1048576 bytes (1 MiB)`, `no such file`, … */
    readonly reason: string,
    /** The errno name when the open failed (`ENOENT`, `EACCES`, `ELOOP`), else undefined. */
    readonly errno?: string,
    options: { cause?: unknown } = {},
  ) {
    super("EREAD", `Cannot read ${path}: ${reason}`, options);
  }

  get notFound(): boolean {
    return this.errno === "ENOENT" || this.errno === "ENOTDIR";
  }
}

/** `1048576 bytes (1 MiB)`: the cap as the error lines say it. */
export function sizeText(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n} bytes (${n / MiB} MiB)`;
  if (n >= KiB && n % KiB === 0) return `${n} bytes (${n / KiB} KiB)`;
  return `${n} bytes`;
}

/** What an opened inode is: node's Stats or Deno's FileInfo, reduced to what is checked. */
interface Kind {
  file: boolean;
  dir: boolean;
  fifo: boolean;
  chr: boolean;
  blk: boolean;
  sock: boolean;
  size: number;
}

function kindOf(k: Kind): string {
  if (k.dir) return "a directory";
  if (k.fifo) return "a FIFO";
  if (k.chr) return "a character device";
  if (k.blk) return "a block device";
  if (k.sock) return "a socket";
  return "not a plain file";
}

function nodeKind(st: Stats): Kind {
  return {
    file: st.isFile(),
    dir: st.isDirectory(),
    fifo: st.isFIFO(),
    chr: st.isCharacterDevice(),
    blk: st.isBlockDevice(),
    sock: st.isSocket(),
    size: st.size,
  };
}

/** The inode an fd from libc's open refers to (stat follows /proc's magic link to it). */
function fdKind(fd: number): Kind {
  const st = Deno.statSync(`/proc/self/fd/${fd}`);
  return {
    file: st.isFile,
    dir: st.isDirectory,
    fifo: st.isFifo === true,
    chr: st.isCharDevice === true,
    blk: st.isBlockDevice === true,
    sock: st.isSocket === true,
    size: st.size,
  };
}

/** Opens without blocking: an fd, or the errno's name and a message. */
function openNonblocking(path: string, follow: boolean): number {
  if (nodeFs) {
    const c = nodeFs.constants;
    return nodeFs.openSync(path, c.O_RDONLY | c.O_NONBLOCK | (follow ? 0 : c.O_NOFOLLOW));
  }
  const fd = libc().open(
    cstr(path),
    O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW),
    0,
  );
  if (fd >= 0) return fd;
  const n = errno();
  const code = ERRNO_NAMES[n] ?? `errno ${n}`;
  throw Object.assign(new Error(`${code}: open failed`), { code });
}

/** Closes an fd {@linkcode openRegular} gave. */
export function closeFd(fd: number): void {
  if (nodeFs) nodeFs.closeSync(fd);
  else libc().close(fd);
}

const OPEN_REASONS: Record<string, string> = {
  ENOENT: "no such file",
  ENOTDIR: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ELOOP: "a symlink (not followed here)",
  ENXIO: "not a regular file",
};

/**
 * Opens `path` for reading without blocking and without reading: the fd of
 * a regular file and its size; FileReadError for anything else. The caller
 * closes the fd ({@linkcode closeFd}).
 */
export function openRegular(
  path: string,
  options: { follow?: boolean } = {},
): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openNonblocking(path, options.follow !== false);
  } catch (e) {
    const errno = (e as { code?: string }).code;
    const reason = (errno && OPEN_REASONS[errno]) ??
      (e as Error).message.split("\n")[0].replace(/,.*$/, "");
    throw new FileReadError(path, reason, errno, { cause: e });
  }
  try {
    const k = nodeFs ? nodeKind(nodeFs.fstatSync(fd)) : fdKind(fd);
    if (!k.file) throw new FileReadError(path, `not a regular file (${kindOf(k)})`);
    return { fd, size: k.size };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/**
 * A large input (an image archive) that is streamed, not capped: opened as
 * {@linkcode openRegular} opens it (never waiting on a FIFO, refusing
 * anything but a regular file), then reopened through /proc/self/fd so that
 * the file read is the very inode checked, as a Deno.FsFile.
 */
export function openRegularFile(path: string, options: { follow?: boolean } = {}): Deno.FsFile {
  const { fd } = openRegular(path, options);
  try {
    return Deno.openSync(`/proc/self/fd/${fd}`, { read: true });
  } finally {
    closeFd(fd);
  }
}

/**
 * Reads from `fd` (a regular file from {@linkcode openRegular}, from its start)
 * at most `max + 1` bytes.
 */
export function readAtMost(fd: number, max: number, sizeHint = 0): Uint8Array {
  if (nodeFs) {
    return readWith((b, at) => nodeFs.readSync(fd, b, at, b.length - at, null), max, sizeHint);
  }
  // The inode is a regular file (checked): opened again through /proc, no FIFO can block it.
  using f = Deno.openSync(`/proc/self/fd/${fd}`, { read: true });
  return readWith((b, at) => f.readSync(b.subarray(at)) ?? 0, max, sizeHint);
}

function readWith(
  read: (buf: Uint8Array, at: number) => number,
  max: number,
  sizeHint: number,
): Uint8Array {
  const cap = max + 1;
  let buf = new Uint8Array(Math.min(cap, Math.max(sizeHint + 1, 4 * KiB)));
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      if (buf.length >= cap) break;
      const grown = new Uint8Array(Math.min(cap, buf.length * 2));
      grown.set(buf);
      buf = grown;
    }
    const r = read(buf, n);
    if (r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/** The bytes of the regular file `path`, at most `options.max` of them (FileReadError otherwise). */
export function readBounded(path: string, options: ReadBoundedOptions): Uint8Array {
  const { fd, size } = openRegular(path, options);
  try {
    // The size fstat gave is a fact about now, not a promise: the read is capped regardless.
    if (size > options.max) {
      throw new FileReadError(path, `larger than ${sizeText(options.max)}`);
    }
    const bytes = readAtMost(fd, options.max, size);
    if (bytes.length > options.max) {
      throw new FileReadError(path, `larger than ${sizeText(options.max)}`);
    }
    return bytes;
  } finally {
    closeFd(fd);
  }
}

/** {@linkcode readBounded}, decoded as UTF-8 (bad bytes become U+FFFD, as Deno.readTextFile does). */
export function readTextBounded(path: string, options: ReadBoundedOptions): string {
  return new TextDecoder().decode(readBounded(path, options));
}

/** Reads a stream (stdin) to its end, at most `max` bytes; undefined when it holds more. */
export async function readStreamBounded(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      total += r.value.length;
      if (total > max) return undefined;
      parts.push(r.value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return concat(parts);
}
