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
 * node:fs is used because Deno.open has no O_NONBLOCK; the CLI and the
 * daemon load it anyway (commander imports it).
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { RklError } from "../errors.ts";
import { concat } from "../bytes.ts";

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

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a plain file";
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
 * closes the fd (node:fs closeSync).
 */
export function openRegular(
  path: string,
  options: { follow?: boolean } = {},
): { fd: number; size: number } {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK |
    (options.follow === false ? constants.O_NOFOLLOW : 0);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (e) {
    const errno = (e as { code?: string }).code;
    const reason = (errno && OPEN_REASONS[errno]) ??
      (e as Error).message.split("\n")[0].replace(/,.*$/, "");
    throw new FileReadError(path, reason, errno, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileReadError(path, `not a regular file (${kindOf(st)})`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
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
    closeSync(fd);
  }
}

/** Reads from `fd` (a regular file, at its current offset) at most `max + 1` bytes. */
export function readAtMost(fd: number, max: number, sizeHint = 0): Uint8Array {
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
    const r = readSync(fd, buf, n, buf.length - n, null);
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
    closeSync(fd);
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
