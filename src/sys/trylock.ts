/**
 * flock(LOCK_EX | LOCK_NB): the one lock rkl must not wait for. Deno's
 * FsFile.lock() always waits; `rkl gc` asks whether the image store is idle
 * (no pull or import holds its gc lock, shared) and moves on if it is not.
 * Deno's own locks are flock locks too, so the two see each other.
 */
import { SysError } from "../errors.ts";
import { cstr, errno, libc } from "./libc.ts";

const O_RDWR = 2;
const O_CREAT = 0o100;
const O_CLOEXEC = 0o2000000;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/** The exclusive lock on `path` (made if missing) if free now: its release; undefined if held. */
export function tryLockExclusive(path: string): (() => void) | undefined {
  const l = libc();
  const fd = l.open(cstr(path), O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
  if (fd < 0) throw new SysError("open", errno(), JSON.stringify(path));
  if (l.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const e = errno();
    l.close(fd);
    if (e === EWOULDBLOCK) return undefined;
    throw new SysError("flock", e, JSON.stringify(path));
  }
  return () => void l.close(fd);
}

/**
 * flock(LOCK_SH or LOCK_EX | LOCK_NB) on `path` (made if missing, mode 0600):
 * its release when it was free; undefined when another holds it or when this
 * process cannot call libc (no FFI), where the caller waits its own way.
 */
export function tryLock(path: string, exclusive: boolean): (() => void) | undefined {
  let fd = -1;
  let l: ReturnType<typeof libc>;
  try {
    l = libc();
    fd = l.open(cstr(path), O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
  } catch {
    return undefined; // no FFI: each symbol is bound (and refused) on first use
  }
  if (fd < 0) return undefined;
  if (l.flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) !== 0) {
    l.close(fd);
    return undefined;
  }
  return () => void l.close(fd);
}
