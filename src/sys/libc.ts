/**
 * The one place rkl opens libc. Every symbol carries its C prototype; errno is
 * read through `__errno_location()` straight after a failing call.
 *
 * Namespace calls are synchronous on purpose: setns/unshare act on the calling
 * thread, and a synchronous FFI call runs on the JS thread that made it.
 */

const symbols = {
  // int unshare(int flags);
  unshare: { parameters: ["i32"], result: "i32" },
  // int setns(int fd, int nstype);
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // int open(const char *pathname, int flags, mode_t mode);
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int flock(int fd, int operation);
  flock: { parameters: ["i32", "i32"], result: "i32" },
  // int mount(const char *source, const char *target, const char *fstype,
  //           unsigned long flags, const void *data);
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  // int umount2(const char *target, int flags);
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  // int prctl(int option, unsigned long arg2, unsigned long arg3,
  //           unsigned long arg4, unsigned long arg5);
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  // pid_t gettid(void);
  gettid: { parameters: [], result: "i32" },
  // int sethostname(const char *name, size_t len);
  sethostname: { parameters: ["buffer", "u64"], result: "i32" },
  // int mkfifo(const char *pathname, mode_t mode);
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  // long syscall(long number, ...); used as syscall(SYS_openat2, int dirfd,
  // const char *path, struct open_how *how, size_t size): glibc has no wrapper.
  syscall: { parameters: ["i64", "i64", "buffer", "buffer", "u64"], result: "i64" },
  // ssize_t write(int fd, const void *buf, size_t count);
  write: { parameters: ["i32", "buffer", "u64"], result: "i64" },
  // int mkdirat(int dirfd, const char *pathname, mode_t mode);
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int mknod(const char *pathname, mode_t mode, dev_t dev);
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  // int lchown(const char *pathname, uid_t owner, gid_t group);
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  // int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags);
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "u64", "i32"], result: "i32" },
  // ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size);
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "u64"], result: "i64" },
  // int utimensat(int dirfd, const char *pathname, const struct timespec times[2], int flags);
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  // ssize_t llistxattr(const char *path, char *list, size_t size);
  llistxattr: { parameters: ["buffer", "buffer", "u64"], result: "i64" },
  // int statx(int dirfd, const char *pathname, int flags, unsigned int mask, struct statx *buf);
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  // int socket(int domain, int type, int protocol);
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len);
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len);
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // int socketpair(int domain, int type, int protocol, int sv[2]);
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // int shutdown(int fd, int how);
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count), on a worker thread: it may block.
  read_blocking: {
    name: "read",
    parameters: ["i32", "buffer", "u64"],
    result: "i64",
    nonblocking: true,
  },
  // ssize_t write(int fd, const void *buf, size_t count), on a worker thread: it may block.
  write_blocking: {
    name: "write",
    parameters: ["i32", "buffer", "u64"],
    result: "i64",
    nonblocking: true,
  },
  // int ioctl(int fd, unsigned long request, void *arg); (variadic; an int, a long and a
  // pointer go in registers as for a plain call on x86_64 and aarch64 Linux)
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  // int memfd_create(const char *name, unsigned int flags);
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  // ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
  sendfile: { parameters: ["i32", "i32", "pointer", "u64"], result: "i64" },
  // sendfile(2) on a worker thread: the runtime's sealed copy made while modules load (sealed.ts).
  sendfile_async: {
    name: "sendfile",
    parameters: ["i32", "i32", "pointer", "u64"],
    result: "i64",
    nonblocking: true,
  },
  // int fcntl(int fd, int cmd, ...); (variadic, used with one int argument: in a
  // register as for a plain call on x86_64 and aarch64 Linux)
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int malloc_trim(size_t pad);
  malloc_trim: { parameters: ["u64"], result: "i32" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

export type LibcSymbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

let table: LibcSymbols | undefined;
/** The libraries opened (one per symbol): kept, so none is ever collected. */
const opened: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>[] = [];

function bind<K extends keyof typeof symbols>(name: K): LibcSymbols[K] {
  const one = Deno.dlopen("libc.so.6", { [name]: symbols[name] } as Deno.ForeignLibraryInterface);
  opened.push(one);
  return one.symbols[name] as unknown as LibcSymbols[K];
}

/**
 * libc's symbols, each bound on its first use (needs `--allow-ffi`): binding
 * the whole table at once costs 10-12 ms here, one symbol about 0.15, and a
 * `pod run` uses a handful. `__errno_location` is bound at once, so that no
 * binding (dlopen may set errno) comes between a failed call and its errno.
 */
export function libc(): LibcSymbols {
  if (table) return table;
  const t = {} as Record<string, unknown>;
  for (const name of Object.keys(symbols) as (keyof typeof symbols)[]) {
    Object.defineProperty(t, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = bind(name);
        Object.defineProperty(t, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  void t.__errno_location; // bound now (see above)
  return table = t as LibcSymbols;
}

/**
 * The two calls that mark inherited fds close-on-exec (cloexec.ts), in a table
 * of their own: rkl does this at start, before it knows whether it needs the
 * rest, and opening the full table costs some milliseconds where this one
 * costs one. close_range is optional: glibc has it from 2.34.
 */
const fdSymbols = {
  // int close_range(unsigned int first, unsigned int last, int flags);
  close_range: { parameters: ["u32", "u32", "i32"], result: "i32", optional: true },
  // int fcntl(int fd, int cmd, ...); (one int argument, see above)
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

export type LibcFdSymbols = Deno.DynamicLibrary<typeof fdSymbols>["symbols"];

let fdLib: Deno.DynamicLibrary<typeof fdSymbols> | undefined;

/** The fd calls alone (needs `--allow-ffi`). */
export function libcFds(): LibcFdSymbols {
  fdLib ??= Deno.dlopen("libc.so.6", fdSymbols);
  return fdLib.symbols;
}

/** errno of the last failed call on this thread. */
export function errno(): number {
  const p = libc().__errno_location();
  if (p === null) return 0;
  return new Deno.UnsafePointerView(p).getInt32();
}

const encoder = new TextEncoder();

/** A NUL-terminated C string. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`string ${JSON.stringify(s)} contains NUL`);
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
