/**
 * Typed errors. Every error rkl raises is an {@linkcode RklError}; the CLI maps
 * {@linkcode SpecError} to exit code 2 and everything else to 1.
 *
 * Messages follow "Cannot <action>: <detail>", sentence case, no full stop.
 */

export interface RklErrorOptions {
  cause?: unknown;
  hint?: string;
}

export class RklError extends Error {
  readonly code: string;
  readonly hint?: string;
  /** Process exit code the CLI uses for this error. */
  get exitCode(): number {
    return 1;
  }

  constructor(code: string, message: string, options: RklErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** A command that cannot run in a container: exit code 127, as a shell (and podman exec) gives. */
export class NoExecutableError extends RklError {
  override get exitCode(): number {
    return 127;
  }
  constructor(message: string) {
    super("ENOEXEC", message);
  }
}

/** A location inside a user's file. Lines and columns are 1-based. */
export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
}

/** Bad user input: a YAML file, a flag, a name. Exit code 2. */
export class SpecError extends RklError {
  readonly file: string;
  readonly line?: number;
  readonly column?: number;
  /** Dotted field path such as `spec.containers[0].image`, empty for the whole file. */
  readonly path: string;
  /** The bare message without location, e.g. `Expected string, received number`. */
  readonly detail: string;

  override get exitCode(): number {
    return 2;
  }

  constructor(
    loc: SourceLocation & { path?: string },
    detail: string,
    options: RklErrorOptions = {},
  ) {
    super("ESPEC", formatLocated(loc, loc.path ?? "", detail), options);
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
    this.path = loc.path ?? "";
    this.detail = detail;
  }
}

/** One step of a field path: a key or a list index (`["volumeMounts", 0, "hostPath"]`). */
export type FieldPathSegment = string | number;

/**
 * Bad input found by the core, named by its field path relative to the
 * request's root, with no position: the front end's locator (a request's
 * `source.at`) turns it into a {@linkcode SpecError} at its own place, the
 * file:line:col of a YAML file, a CRI request's proto field, a compose key
 * or a command-line flag (see {@linkcode locateFieldError}). Exit code 2.
 */
export class FieldError extends RklError {
  readonly path: readonly FieldPathSegment[];
  readonly detail: string;

  override get exitCode(): number {
    return 2;
  }

  constructor(path: readonly FieldPathSegment[], detail: string, options: RklErrorOptions = {}) {
    super("EFIELD", path.length > 0 ? `${path.join(".")}: ${detail}` : detail, options);
    this.path = path;
    this.detail = detail;
  }
}

/** Where a request's front end puts a field path: `source.at` of a request. */
export interface FieldLocator {
  at(path: readonly FieldPathSegment[]): SourceLocation & { path?: string };
}

/** A FieldError as a SpecError at the locator's place for its path; any other error unchanged. */
export function locateFieldError(e: unknown, locator: FieldLocator): unknown {
  if (!(e instanceof FieldError)) return e;
  return new SpecError(locator.at(e.path), e.detail, { cause: e });
}

/** Runs `fn`, turning a FieldError it throws into a SpecError through `locator`. */
export async function locatingFields<T>(locator: FieldLocator, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw locateFieldError(e, locator);
  }
}

/** `file:line:col: path: detail`, leaving out the parts that are unknown. */
export function formatLocated(loc: SourceLocation, path: string, detail: string): string {
  let where = loc.file;
  if (loc.line !== undefined) {
    where += `:${loc.line}`;
    if (loc.column !== undefined) where += `:${loc.column}`;
  }
  return path ? `${where}: ${path}: ${detail}` : `${where}: ${detail}`;
}

/** A wrong flag or argument on the command line (no file involved). Exit code 2. */
export class UsageError extends RklError {
  override get exitCode(): number {
    return 2;
  }
  constructor(message: string, options: RklErrorOptions = {}) {
    super("EUSAGE", message, options);
  }
}

/** An OCI runtime (youki, runc, crun) or another helper binary failed. */

export class RuntimeError extends RklError {
  readonly argv: string[];
  readonly stderr: string;
  readonly status: number;

  constructor(
    message: string,
    details: { argv: string[]; stderr: string; status: number },
    options: RklErrorOptions = {},
  ) {
    const tail = runtimeErrorLine(details.stderr);
    super("ERUNTIME", tail ? `${message}: ${tail}` : message, options);
    this.argv = details.argv;
    this.stderr = details.stderr;
    this.status = details.status;
  }
}

/**
 * The line of a runtime's stderr that says what went wrong: runc's `msg="…"`,
 * youki's final `Error: …`; never a Rust backtrace frame (RUST_BACKTRACE=1
 * makes youki end its stderr with them).
 */
export function runtimeErrorLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !/^\d+: /.test(l) && !/^at /.test(l) && l !== "Stack backtrace:" &&
    !/^note: run with `RUST_BACKTRACE/.test(l)
  );
  const runc = [...lines].reverse().map((l) => /level=error msg="((?:[^"\\]|\\.)*)"/.exec(l))
    .find(Boolean);
  if (runc) return runc[1].replace(/\\"/g, '"');
  const youki = [...lines].reverse().find((l) => l.startsWith("Error: "));
  if (youki) return youki.slice(7);
  return lines.slice(-3).join("; ");
}

/** A libc call failed. */
export class SysError extends RklError {
  readonly syscall: string;
  readonly errno: number;
  readonly errnoName: string;

  constructor(syscall: string, errno: number, detail: string, options: RklErrorOptions = {}) {
    const name = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super("ESYS", `Cannot ${syscall}${detail ? ` ${detail}` : ""}: ${name}`, options);
    this.syscall = syscall;
    this.errno = errno;
    this.errnoName = name;
  }
}

/** The CNI plugin chain failed (the plugin's error JSON is in the message). */
export class NetworkError extends RklError {
  constructor(message: string, options: RklErrorOptions = {}) {
    super("ENET", message, options);
  }
}

/** Pulling, unpacking or finding an image failed (registry, digest, layer, store). */
export class ImageError extends RklError {
  constructor(message: string, options: RklErrorOptions = {}) {
    super("EIMAGE", message, options);
  }
}

export class StoreError extends RklError {
  constructor(message: string, options: RklErrorOptions = {}) {
    super("ESTORE", message, options);
  }
}

export class NotFoundError extends RklError {
  constructor(message: string, options: RklErrorOptions = {}) {
    super("ENOTFOUND", message, options);
  }
}

/** A name is taken, a port is in use, a state transition is not allowed. */
export class ConflictError extends RklError {
  constructor(message: string, options: RklErrorOptions = {}) {
    super("ECONFLICT", message, options);
  }
}

/** Linux errno values rkl names in messages (asm-generic/errno-base.h). */
export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM (operation not permitted)",
  2: "ENOENT (no such file or directory)",
  3: "ESRCH (no such process)",
  4: "EINTR (interrupted system call)",
  5: "EIO (input/output error)",
  9: "EBADF (bad file descriptor)",
  11: "EAGAIN (resource temporarily unavailable)",
  12: "ENOMEM (out of memory)",
  13: "EACCES (permission denied)",
  16: "EBUSY (device or resource busy)",
  17: "EEXIST (file exists)",
  20: "ENOTDIR (not a directory)",
  21: "EISDIR (is a directory)",
  22: "EINVAL (invalid argument)",
  24: "EMFILE (too many open files)",
  28: "ENOSPC (no space left on device)",
  30: "EROFS (read-only file system)",
  38: "ENOSYS (function not implemented)",
  39: "ENOTEMPTY (directory not empty)",
  95: "EOPNOTSUPP (operation not supported)",
  98: "EADDRINUSE (address already in use)",
};

/** The chain of causes, outermost first, for `--debug`. */
export function causeChain(err: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && depth < 10; depth++) {
    if (cur instanceof Error) {
      out.push(`${cur.name}: ${cur.message}`);
      cur = cur.cause;
    } else {
      out.push(String(cur));
      break;
    }
  }
  return out;
}
