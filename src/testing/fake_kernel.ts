/**
 * The {@linkcode Syscalls} of a FakeHost, acting on its {@linkcode MemFs}:
 * a mount table the kernel's way (a target and, for binds and overlays,
 * their sources must exist; a second mount on one target stacks; umount2 of
 * something not mounted is EINVAL; without MNT_DETACH a mount with mounts
 * below it is EBUSY), /proc/self/mountinfo kept in step with it, FIFOs made
 * in the tree, an fd table (open, openat2 with its RESOLVE_* checks, close),
 * and a record of every call. Errors are the SysErrors LinuxSyscalls throws.
 */
import { SysError } from "../errors.ts";
import {
  MNT_DETACH,
  type MountArgs,
  MS_BIND,
  RESOLVE_BENEATH,
  RESOLVE_NO_SYMLINKS,
  type SyscallCall,
  type Syscalls,
} from "../sys/syscalls.ts";
import type { Faults } from "./faults.ts";
import type { MemFs } from "./mem_fs.ts";

const EBADF = 9;
const EBUSY = 16;
const EINVAL = 22;
const EIO = 5;
const ELOOP = 40;
const EXDEV = 18;
const AT_FDCWD = -100;

/** The errno a MemFs (Deno-style) error stands for. */
function errnoOf(e: unknown): number {
  const m = /\(os error (\d+)\)/.exec((e as Error).message);
  return m ? Number(m[1]) : EIO;
}

export const FAKE_TID = 4242;

export class FakeKernel implements Syscalls {
  readonly calls: SyscallCall[] = [];
  /** Live mounts, oldest first (a later one on the same target hides the earlier). */
  readonly mounts: MountArgs[] = [];
  /** Open fds and the real path each refers to. */
  readonly fds = new Map<number, string>();
  #nextFd = 100;

  constructor(private readonly fs: MemFs, private readonly faults: Faults) {
    fs.busy = (p) => this.mounts.some((m) => m.target === p);
    fs.quietly(() => {
      for (const t of ["net", "uts", "ipc", "mnt", "pid", "cgroup"]) {
        for (const dir of ["/proc/thread-self/ns", `/proc/self/task/${FAKE_TID}/ns`]) {
          fs.mkdir(dir, { recursive: true });
          fs.writeTextFile(`${dir}/${t}`, "");
        }
      }
    });
    this.#writeMountinfo();
  }

  #fail(name: keyof Syscalls, detail: string, mutates = true): void {
    if (this.faults.hit(`sys.${name}`, detail, mutates)) throw new SysError(name, EIO, detail);
  }

  #writeMountinfo(): void {
    const esc = (s: string) =>
      s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
    const lines = this.mounts.map((m, i) =>
      `${100 + i} 1 0:${i + 10} / ${esc(m.target)} rw - ${m.fstype ?? "none"} ${esc(m.source)} rw`
    );
    this.fs.quietly(() => {
      this.fs.mkdir("/proc/self", { recursive: true });
      this.fs.writeTextFile("/proc/self/mountinfo", lines.map((l) => `${l}\n`).join(""));
    });
  }

  /** Live mount targets, in mount order. */
  mountTable(): string[] {
    return this.mounts.map((m) =>
      `${m.target} <- ${m.source}${m.fstype ? ` (${m.fstype})` : ""}${
        m.flags & MS_BIND ? " bind" : ""
      }`
    );
  }

  #mustExist(name: string, path: string, detail: string): void {
    try {
      this.fs.quietly(() => this.fs.stat(path));
    } catch (e) {
      throw new SysError(name, errnoOf(e), detail);
    }
  }

  unshare(flags: number): void {
    this.#fail("unshare", `0x${flags.toString(16)}`);
    this.calls.push({ name: "unshare", flags });
  }
  setns(fd: number, nstype: number): void {
    this.#fail("setns", `fd ${fd}`);
    if (!this.fds.has(fd)) throw new SysError("setns", EBADF, `fd ${fd}`);
    this.calls.push({ name: "setns", fd, nstype });
  }
  open(path: string, flags: number): number {
    this.#fail("open", JSON.stringify(path), false);
    this.#mustExist("open", path, JSON.stringify(path));
    const fd = this.#nextFd++;
    this.#setFd(fd, this.fs.quietly(() => this.fs.realPath(path)));
    this.calls.push({ name: "open", path, flags, fd });
    return fd;
  }
  /** An open fd, and its /proc/self/fd/N link (what a stat or read through it follows). */
  #setFd(fd: number, real: string): void {
    this.fds.set(fd, real);
    this.fs.quietly(() => {
      this.fs.mkdir("/proc/self/fd", { recursive: true });
      this.fs.symlink(real, `/proc/self/fd/${fd}`);
    });
  }
  close(fd: number): void {
    if (!this.fds.delete(fd)) throw new SysError("close", EBADF, `fd ${fd}`);
    this.fs.quietly(() => this.fs.remove(`/proc/self/fd/${fd}`));
    this.calls.push({ name: "close", fd });
  }
  mount(args: MountArgs): void {
    const detail = `${JSON.stringify(args.source)} on ${JSON.stringify(args.target)}`;
    this.#fail("mount", detail);
    this.#mustExist("mount", args.target, detail);
    if (args.flags & MS_BIND) this.#mustExist("mount", args.source, detail);
    if (args.fstype === "overlay") {
      for (const opt of (args.data ?? "").split(",")) {
        const [k, v] = opt.split("=");
        if (k === "lowerdir") { for (const l of v.split(":")) this.#mustExist("mount", l, detail); }
        if (k === "upperdir" || k === "workdir") this.#mustExist("mount", v, detail);
      }
    }
    this.mounts.push({ ...args });
    this.calls.push({ name: "mount", args });
    this.#writeMountinfo();
  }
  umount2(target: string, flags: number): void {
    const detail = JSON.stringify(target);
    this.#fail("umount2", detail);
    let i = -1;
    for (let k = this.mounts.length - 1; k >= 0; k--) {
      if (this.mounts[k].target === target) {
        i = k;
        break;
      }
    }
    if (i < 0) throw new SysError("umount2", EINVAL, detail);
    const below = this.mounts.filter((m) => m.target.startsWith(`${target}/`));
    if (below.length > 0 && !(flags & MNT_DETACH)) throw new SysError("umount2", EBUSY, detail);
    this.mounts.splice(i, 1);
    // A lazy unmount takes the mounts below it along.
    for (const m of below) this.mounts.splice(this.mounts.indexOf(m), 1);
    this.calls.push({ name: "umount2", target, flags });
    this.#writeMountinfo();
  }
  setChildSubreaper(): void {
    this.calls.push({ name: "setChildSubreaper" });
  }
  gettid(): number {
    this.calls.push({ name: "gettid" });
    return FAKE_TID;
  }
  sethostname(hostname: string): void {
    this.#fail("sethostname", JSON.stringify(hostname));
    this.calls.push({ name: "sethostname", hostname });
  }
  mkfifo(path: string, mode: number): void {
    this.#fail("mkfifo", JSON.stringify(path));
    try {
      this.fs.mkfifo(path, mode);
    } catch (e) {
      throw new SysError("mkfifo", errnoOf(e), JSON.stringify(path));
    }
    this.calls.push({ name: "mkfifo", path, mode });
  }
  #at(dirfd: number, path: string, name: string): string {
    if (path.startsWith("/")) return path;
    const base = dirfd === AT_FDCWD ? "/" : this.fds.get(dirfd);
    if (base === undefined) throw new SysError(name, EBADF, `fd ${dirfd}`);
    return base === "/" ? `/${path}` : `${base}/${path}`;
  }
  openat2(dirfd: number, path: string, flags: number, resolve: number): number {
    const detail = JSON.stringify(path);
    this.#fail("openat2", detail, false);
    const full = this.#at(dirfd, path, "openat2");
    const base = dirfd === AT_FDCWD ? "/" : this.fds.get(dirfd)!;
    if (resolve & RESOLVE_NO_SYMLINKS) {
      const parts = path.split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const p = `${base === "/" ? "" : base}/${parts.slice(0, i).join("/")}`;
        try {
          if (this.fs.quietly(() => this.fs.lstat(p)).isSymlink) {
            throw new SysError("openat2", ELOOP, detail);
          }
        } catch (e) {
          if (e instanceof SysError) throw e;
          break; // missing: reported below
        }
      }
    }
    let real: string;
    try {
      real = this.fs.quietly(() => this.fs.realPath(full));
    } catch (e) {
      throw new SysError("openat2", errnoOf(e), detail);
    }
    if (
      (resolve & RESOLVE_BENEATH) &&
      !(real === base || real.startsWith(base === "/" ? "/" : `${base}/`))
    ) {
      throw new SysError("openat2", EXDEV, detail);
    }
    const fd = this.#nextFd++;
    this.#setFd(fd, real);
    this.calls.push({ name: "openat2", dirfd, path, flags, resolve, fd });
    return fd;
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    const detail = JSON.stringify(path);
    this.#fail("mkdirat", detail);
    const full = this.#at(dirfd, path, "mkdirat");
    try {
      this.fs.quietly(() => this.fs.mkdir(full, { mode }));
    } catch (e) {
      throw new SysError("mkdirat", errnoOf(e), detail);
    }
    this.calls.push({ name: "mkdirat", dirfd, path, mode });
  }
  write(fd: number, data: Uint8Array): void {
    this.#fail("write", `fd ${fd}`);
    const path = this.fds.get(fd);
    if (path === undefined) throw new SysError("write", EBADF, `fd ${fd}`);
    this.fs.quietly(() => {
      if (this.fs.stat(path).isFile) this.fs.writeFile(path, data, { append: true });
    });
    this.calls.push({ name: "write", fd, data: new TextDecoder().decode(data) });
  }
  loopbackUp(): void {
    this.#fail("loopbackUp", "lo");
    this.calls.push({ name: "loopbackUp" });
  }
}
