/**
 * The kernel calls rkl makes directly, behind an interface so that everything
 * above it is tested with {@linkcode FakeSyscalls} and no root.
 */
import { SysError } from "../errors.ts";
import { cstr, errno, libc } from "./libc.ts";

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

export const MS_RDONLY = 0x1;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;

export const MNT_DETACH = 0x2;

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;

/** openat2(2) resolve flags. */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
/** SYS_openat2: the same number on x86_64 and aarch64 (the unified syscall table). */
export const SYS_OPENAT2 = 437;

export const PR_SET_CHILD_SUBREAPER = 36;

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;

export const EINVAL = 22;
export const ENOENT = 2;
export const EBUSY = 16;
export const EEXIST = 17;
export const ELOOP = 40;
export const EXDEV = 18;
export const ENOTDIR = 20;
export const ESRCH = 3;

export interface MountArgs {
  source: string;
  target: string;
  fstype?: string;
  flags: number;
  data?: string;
}

export interface Syscalls {
  unshare(flags: number): void;
  setns(fd: number, nstype: number): void;
  open(path: string, flags: number): number;
  close(fd: number): void;
  mount(args: MountArgs): void;
  umount2(target: string, flags: number): void;
  setChildSubreaper(): void;
  gettid(): number;
  /** sethostname(2): in the calling thread's UTS namespace. */
  sethostname(name: string): void;
  mkfifo(path: string, mode: number): void;
  /** openat2(dirfd, path, {flags, resolve}); returns the new fd. */
  openat2(dirfd: number, path: string, flags: number, resolve: number): number;
  mkdirat(dirfd: number, path: string, mode: number): void;
  /** write(2) of all of `data` (short writes are retried). */
  write(fd: number, data: Uint8Array): void;
  /** Sets `lo` up in the calling thread's network namespace (SIOCSIFFLAGS). */
  loopbackUp(): void;
}

function check(name: string, rc: number, detail: string): number {
  if (rc < 0) throw new SysError(name, errno(), detail);
  return rc;
}

/** The real kernel, through libc FFI. */
export class LinuxSyscalls implements Syscalls {
  unshare(flags: number): void {
    check("unshare", libc().unshare(flags), `0x${flags.toString(16)}`);
  }
  setns(fd: number, nstype: number): void {
    check("setns", libc().setns(fd, nstype), `fd ${fd}`);
  }
  open(path: string, flags: number): number {
    return check("open", libc().open(cstr(path), flags, 0), JSON.stringify(path));
  }
  close(fd: number): void {
    check("close", libc().close(fd), `fd ${fd}`);
  }
  mount(m: MountArgs): void {
    const rc = libc().mount(
      cstr(m.source),
      cstr(m.target),
      m.fstype === undefined ? null : cstr(m.fstype),
      BigInt(m.flags),
      m.data === undefined ? null : cstr(m.data),
    );
    check("mount", rc, `${JSON.stringify(m.source)} on ${JSON.stringify(m.target)}`);
  }
  umount2(target: string, flags: number): void {
    check("umount2", libc().umount2(cstr(target), flags), JSON.stringify(target));
  }
  setChildSubreaper(): void {
    check("prctl", libc().prctl(PR_SET_CHILD_SUBREAPER, 1n, 0n, 0n, 0n), "PR_SET_CHILD_SUBREAPER");
  }
  gettid(): number {
    return libc().gettid();
  }
  sethostname(name: string): void {
    const b = new TextEncoder().encode(name);
    check("sethostname", libc().sethostname(b, BigInt(b.length)), JSON.stringify(name));
  }
  mkfifo(path: string, mode: number): void {
    check("mkfifo", libc().mkfifo(cstr(path), mode), JSON.stringify(path));
  }
  openat2(dirfd: number, path: string, flags: number, resolve: number): number {
    // struct open_how { u64 flags; u64 mode; u64 resolve; }
    const how = new BigUint64Array([BigInt(flags), 0n, BigInt(resolve)]);
    const rc = libc().syscall(
      BigInt(SYS_OPENAT2),
      BigInt(dirfd),
      cstr(path),
      new Uint8Array(how.buffer),
      BigInt(how.byteLength),
    );
    return check("openat2", Number(rc), JSON.stringify(path));
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    check("mkdirat", libc().mkdirat(dirfd, cstr(path), mode), JSON.stringify(path));
  }
  loopbackUp(): void {
    const L = libc();
    const fd = check("socket", L.socket(AF_INET, SOCK_DGRAM | O_CLOEXEC, 0), "AF_INET");
    try {
      // struct ifreq: char ifr_name[16]; then the union, here short ifr_flags.
      const req = new Uint8Array(40);
      req.set(new TextEncoder().encode("lo"));
      check("ioctl", L.ioctl(fd, BigInt(SIOCGIFFLAGS), req), "SIOCGIFFLAGS lo");
      const v = new DataView(req.buffer);
      v.setInt16(16, v.getInt16(16, true) | IFF_UP, true);
      check("ioctl", L.ioctl(fd, BigInt(SIOCSIFFLAGS), req), "SIOCSIFFLAGS lo");
    } finally {
      L.close(fd);
    }
  }
  write(fd: number, data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      const chunk = new Uint8Array(data.subarray(off));
      off += check("write", Number(libc().write(fd, chunk, BigInt(chunk.length))), `fd ${fd}`);
    }
  }
}

export type SyscallCall =
  | { name: "unshare"; flags: number }
  | { name: "setns"; fd: number; nstype: number }
  | { name: "open"; path: string; flags: number; fd: number }
  | { name: "close"; fd: number }
  | { name: "mount"; args: MountArgs }
  | { name: "umount2"; target: string; flags: number }
  | { name: "setChildSubreaper" }
  | { name: "gettid" }
  | { name: "sethostname"; hostname: string }
  | { name: "mkfifo"; path: string; mode: number }
  | { name: "openat2"; dirfd: number; path: string; flags: number; resolve: number; fd: number }
  | { name: "mkdirat"; dirfd: number; path: string; mode: number }
  | { name: "write"; fd: number; data: string }
  | { name: "loopbackUp" };

/**
 * Records every call and keeps a table of mounts; `failNext` makes the next
 * call of one name fail with an errno, like youki's TestHelperSyscall.
 */
export class FakeSyscalls implements Syscalls {
  readonly calls: SyscallCall[] = [];
  /** target → source of every live mount. */
  readonly mounts = new Map<string, MountArgs>();
  readonly openFds = new Set<number>();
  #nextFd = 100;
  #failures = new Map<keyof Syscalls, number>();

  failNext(name: keyof Syscalls, errnoValue: number): void {
    this.#failures.set(name, errnoValue);
  }

  #maybeFail(name: keyof Syscalls, detail: string): void {
    const e = this.#failures.get(name);
    if (e !== undefined) {
      this.#failures.delete(name);
      throw new SysError(name, e, detail);
    }
  }

  unshare(flags: number): void {
    this.#maybeFail("unshare", "");
    this.calls.push({ name: "unshare", flags });
  }
  setns(fd: number, nstype: number): void {
    this.#maybeFail("setns", `fd ${fd}`);
    this.calls.push({ name: "setns", fd, nstype });
  }
  open(path: string, flags: number): number {
    this.#maybeFail("open", path);
    const fd = this.#nextFd++;
    this.openFds.add(fd);
    this.calls.push({ name: "open", path, flags, fd });
    return fd;
  }
  close(fd: number): void {
    this.#maybeFail("close", `fd ${fd}`);
    this.openFds.delete(fd);
    this.calls.push({ name: "close", fd });
  }
  mount(args: MountArgs): void {
    this.#maybeFail("mount", args.target);
    this.mounts.set(args.target, args);
    this.calls.push({ name: "mount", args });
  }
  umount2(target: string, flags: number): void {
    this.#maybeFail("umount2", target);
    if (!this.mounts.delete(target)) throw new SysError("umount2", EINVAL, JSON.stringify(target));
    this.calls.push({ name: "umount2", target, flags });
  }
  setChildSubreaper(): void {
    this.calls.push({ name: "setChildSubreaper" });
  }
  gettid(): number {
    this.calls.push({ name: "gettid" });
    return 4242;
  }
  sethostname(hostname: string): void {
    this.#maybeFail("sethostname", hostname);
    this.calls.push({ name: "sethostname", hostname });
  }
  mkfifo(path: string, mode: number): void {
    this.#maybeFail("mkfifo", path);
    this.calls.push({ name: "mkfifo", path, mode });
  }
  openat2(dirfd: number, path: string, flags: number, resolve: number): number {
    this.#maybeFail("openat2", path);
    const fd = this.#nextFd++;
    this.openFds.add(fd);
    this.calls.push({ name: "openat2", dirfd, path, flags, resolve, fd });
    return fd;
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    this.#maybeFail("mkdirat", path);
    this.calls.push({ name: "mkdirat", dirfd, path, mode });
  }
  loopbackUp(): void {
    this.#maybeFail("loopbackUp", "lo");
    this.calls.push({ name: "loopbackUp" });
  }
  write(fd: number, data: Uint8Array): void {
    this.#maybeFail("write", `fd ${fd}`);
    this.calls.push({ name: "write", fd, data: new TextDecoder().decode(data) });
  }
}
