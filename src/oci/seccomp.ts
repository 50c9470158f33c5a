/**
 * rkl's default seccomp profile (`RuntimeDefault`), in the OCI
 * `linux.seccomp` form.
 *
 * Shape: docker's. An allow-list, with EPERM for everything else, built from
 * the rules of docker's default profile (moby/profiles `seccomp/default.json`;
 * `tests/fixtures/seccomp/docker-default.json` holds a copy of its rules and
 * seccomp_test.ts checks, syscall by syscall and argument by argument, that
 * this profile allows nothing that one refuses):
 *
 * - the plain list below, allowed to every container;
 * - a few names per architecture (`arch_prctl` on x86_64, the ARM cache and
 *   TLS calls on aarch64);
 * - names a capability brings (`CAP_SYS_ADMIN` → mount/unshare/setns/…,
 *   `CAP_SYS_MODULE` → init_module, …), so `capabilities.add: [SYS_ADMIN]`
 *   works as users know from docker;
 * - argument rules: `socket` for every family but AF_ALG and AF_VSOCK,
 *   `personality` for the five values docker allows, `clone` without a
 *   namespace flag (unless `CAP_SYS_ADMIN`), and `clone3` answering ENOSYS
 *   (its flags are in memory, where seccomp cannot look; libc then falls
 *   back to `clone`).
 *
 * Not in any list, so refused: io_uring_setup/enter/register, keyctl and the
 * keyring, kexec, userfaultfd, swapon, pivot_root, and every syscall newer
 * than this list. rkl is stricter than docker in a few places (STRICTER).
 *
 * Names a libseccomp build does not know on an architecture are skipped by
 * the runtimes, so one list serves x86_64 and aarch64.
 */

export interface SeccompArg {
  index: number;
  /** The mask, for SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo. */
  value: number;
  valueTwo?: number;
  op:
    | "SCMP_CMP_EQ"
    | "SCMP_CMP_NE"
    | "SCMP_CMP_LT"
    | "SCMP_CMP_LE"
    | "SCMP_CMP_GT"
    | "SCMP_CMP_GE"
    | "SCMP_CMP_MASKED_EQ";
}

export interface SeccompRule {
  names: string[];
  action: "SCMP_ACT_ERRNO" | "SCMP_ACT_ALLOW";
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface SeccompProfile {
  defaultAction: "SCMP_ACT_ALLOW" | "SCMP_ACT_ERRNO";
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Allowed to every container (docker's unconditional list). */
// deno-fmt-ignore
const ALLOWED = [
  "_llseek", "_newselect", "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk",
  "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
  "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
  "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
  "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
  "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
  "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
  "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
  "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
  "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
  "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
  "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_robust_list",
  "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
  "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
  "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
  "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid",
  "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
  "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
  "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
  "io_submit", "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill", "landlock_add_rule",
  "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
  "linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "lremovexattr",
  "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
  "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
  "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
  "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
  "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
  "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat",
  "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
  "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
  "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
  "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
  "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
  "removexattrat", "rename", "renameat", "renameat2", "restart_syscall", "riscv_hwprobe",
  "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
  "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
  "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity",
  "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
  "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
  "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
  "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
  "sendto", "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32",
  "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
  "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
  "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid",
  "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
  "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
  "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat",
  "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
  "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
  "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
  "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
  "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes",
  "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
];

/** Allowed on one architecture only. */
const ALLOWED_BY_ARCH: Record<string, string[]> = {
  x86_64: ["arch_prctl", "modify_ldt"],
  aarch64: [
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
  ],
}; // deno-fmt-ignore

/** Allowed when the container holds the capability. */
const ALLOWED_BY_CAPABILITY: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
    "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount",
    "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
    "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
  ],
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
  CAP_SYS_BOOT: ["reboot"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_SYS_MODULE: ["delete_module", "init_module", "finit_module"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_PTRACE: ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
    "process_vm_writev", "ptrace"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYS_NICE: ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
  CAP_SYSLOG: ["syslog"],
  CAP_BPF: ["bpf"],
  CAP_PERFMON: ["perf_event_open"],
}; // deno-fmt-ignore

/**
 * Where rkl refuses what docker allows, unless the container holds the
 * capability ("" = whatever it holds): docker lets every container ptrace
 * (kernel 4.8+, where ptrace no longer bypasses seccomp), read the clock's
 * tuning and make file handles; rkl keeps those behind the capability they
 * are about, as it did before it took docker's list.
 */
const STRICTER: Record<string, string[]> = {
  CAP_SYS_PTRACE: ["ptrace", "process_vm_readv", "process_vm_writev"],
  CAP_SYS_TIME: ["adjtimex", "clock_adjtime", "clock_adjtime64"],
  CAP_SYS_ADMIN: ["name_to_handle_at"],
  "": ["lookup_dcookie"],
};

/** clone() flags that make namespaces: refused without CAP_SYS_ADMIN. */
export const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];
const CLONE_NAMESPACE_MASK = CLONE_NAMESPACE_FLAGS.reduce((a, b) => a | b, 0);

const AF_ALG = 38;
const AF_NFC = 39;
const AF_VSOCK = 40;

/** personality() values allowed: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and the query. */
export const PERSONALITY_ALLOWED = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

export function seccompArchitectures(arch: string = Deno.build.arch): string[] {
  return arch === "aarch64"
    ? ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    : ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
}

/** The syscalls the default profile allows, whatever their arguments, to a container holding `caps`. */
export function allowedSyscalls(
  caps: readonly string[],
  arch: string = Deno.build.arch,
): string[] {
  const have = new Set(caps);
  const out = new Set(ALLOWED);
  for (const n of ALLOWED_BY_ARCH[arch === "aarch64" ? "aarch64" : "x86_64"]) out.add(n);
  for (const [cap, names] of Object.entries(ALLOWED_BY_CAPABILITY)) {
    if (have.has(cap)) { for (const n of names) out.add(n); }
  }
  for (const [cap, names] of Object.entries(STRICTER)) {
    if (cap === "" || !have.has(cap)) { for (const n of names) out.delete(n); }
  }
  return [...out].sort();
}

/** The `RuntimeDefault` profile for a container holding `caps`. */
export function defaultSeccompProfile(
  caps: readonly string[],
  arch: string = Deno.build.arch,
): SeccompProfile {
  const allow = (names: string[], args?: SeccompArg[]): SeccompRule =>
    args ? { names, action: "SCMP_ACT_ALLOW", args } : { names, action: "SCMP_ACT_ALLOW" };
  const syscalls: SeccompRule[] = [
    allow(allowedSyscalls(caps, arch)),
    allow(["socket"], [{ index: 0, value: AF_ALG, op: "SCMP_CMP_LT" }]),
    allow(["socket"], [{ index: 0, value: AF_NFC, op: "SCMP_CMP_EQ" }]),
    allow(["socket"], [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_GT" }]),
    ...PERSONALITY_ALLOWED.map((v) =>
      allow(["personality"], [{ index: 0, value: v, op: "SCMP_CMP_EQ" }])
    ),
  ];
  if (!caps.includes("CAP_SYS_ADMIN")) {
    syscalls.push(
      allow(["clone"], [
        { index: 0, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" },
      ]),
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    );
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: EPERM,
    architectures: seccompArchitectures(arch),
    syscalls,
  };
}

/** Checks that a Localhost profile file holds an OCI seccomp object; returns it. */
export function parseSeccompProfile(text: string, file: string): SeccompProfile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON: ${(e as Error).message}`);
  }
  const p = v as Partial<SeccompProfile>;
  if (!p || typeof p !== "object" || typeof p.defaultAction !== "string") {
    throw new Error(`${file}: a seccomp profile needs "defaultAction"`);
  }
  if (p.syscalls !== undefined && !Array.isArray(p.syscalls)) {
    throw new Error(`${file}: "syscalls" must be a list`);
  }
  return p as SeccompProfile;
}
