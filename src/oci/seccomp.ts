/**
 * rkl's default seccomp profile (`RuntimeDefault`), in the OCI
 * `linux.seccomp` form.
 *
 * Shape chosen here: allow by default, and refuse (EPERM) the syscalls a
 * container has no business making — kernel modules, kexec, reboot, the
 * clock, accounting, swap, raw I/O ports, the keyring, bpf/perf, handles
 * that bypass path checks, mounting and namespace creation — unless the
 * container was granted the capability that the syscall is about, so that
 * `capabilities.add: [SYS_ADMIN]` or `SYS_PTRACE` keeps working as users know
 * from docker. docker and podman use an allow-list instead, which also
 * refuses syscalls newer than the list; the trade made here is that a
 * deny-list cannot break a workload on a syscall this file never heard of
 * (glibc and musl probe new ones), at the cost of letting future syscalls
 * through until they are listed. `Localhost` profiles take either shape.
 *
 * Names a libseccomp build does not know on an architecture are skipped by
 * the runtimes, so one list serves x86_64 and aarch64.
 */

export interface SeccompRule {
  names: string[];
  action: "SCMP_ACT_ERRNO" | "SCMP_ACT_ALLOW";
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo: number; op: "SCMP_CMP_MASKED_EQ" }[];
}

export interface SeccompProfile {
  defaultAction: "SCMP_ACT_ALLOW" | "SCMP_ACT_ERRNO";
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Always refused: obsolete, or never safe inside a container. */
const ALWAYS = [
  "create_module",
  "get_kernel_syms",
  "query_module",
  "nfsservctl",
  "uselib",
  "_sysctl",
  "sysfs",
  "ustat",
  "vm86",
  "vm86old",
  "kexec_load",
  "kexec_file_load",
  "keyctl",
  "add_key",
  "request_key",
  "lookup_dcookie",
]; // deno-fmt-ignore

/** Refused unless the container holds the capability. */
const BY_CAPABILITY: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    "mount", "umount", "umount2", "pivot_root", "swapon", "swapoff", "quotactl", "quotactl_fd",
    "setns", "unshare", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "name_to_handle_at", "bpf", "perf_event_open", "fanotify_init",
    "userfaultfd", "setdomainname", "sethostname",
  ],
  CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
  CAP_SYS_BOOT: ["reboot"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
    "clock_adjtime64", "adjtimex"],
  CAP_SYS_PTRACE: ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise"],
  CAP_SYSLOG: ["syslog"],
  CAP_SYS_NICE: ["mbind", "set_mempolicy", "migrate_pages", "move_pages",
    "set_mempolicy_home_node"],
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_BPF: [],
  CAP_PERFMON: [],
}; // deno-fmt-ignore

/** Capabilities that also grant a group above (CAP_BPF/CAP_PERFMON split off CAP_SYS_ADMIN). */
const ALSO: Record<string, { cap: string; names: string[] }> = {
  CAP_BPF: { cap: "CAP_SYS_ADMIN", names: ["bpf"] },
  CAP_PERFMON: { cap: "CAP_SYS_ADMIN", names: ["perf_event_open"] },
};

/** clone() flags that make namespaces: refused without CAP_SYS_ADMIN, one rule per flag. */
export const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

export function seccompArchitectures(arch: string = Deno.build.arch): string[] {
  return arch === "aarch64"
    ? ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    : ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
}

/** The syscalls the default profile refuses for a container holding `caps`. */
export function refusedSyscalls(caps: readonly string[]): string[] {
  const have = new Set(caps);
  const out = new Set(ALWAYS);
  for (const [cap, names] of Object.entries(BY_CAPABILITY)) {
    if (have.has(cap)) continue;
    for (const n of names) out.add(n);
  }
  for (const [cap, { names }] of Object.entries(ALSO)) {
    if (have.has(cap)) { for (const n of names) out.delete(n); }
  }
  // A name granted through CAP_SYS_ADMIN stays granted even if listed elsewhere.
  if (have.has("CAP_SYS_ADMIN")) { for (const n of BY_CAPABILITY.CAP_SYS_ADMIN) out.delete(n); }
  return [...out].sort();
}

/** The `RuntimeDefault` profile for a container holding `caps`. */
export function defaultSeccompProfile(
  caps: readonly string[],
  arch: string = Deno.build.arch,
): SeccompProfile {
  const syscalls: SeccompRule[] = [
    { names: refusedSyscalls(caps), action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
  ];
  if (!caps.includes("CAP_SYS_ADMIN")) {
    // clone3 passes its flags in memory, where seccomp cannot look: ENOSYS
    // makes glibc and musl fall back to clone(), whose flags are checked.
    syscalls.push({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS });
    for (const flag of CLONE_NAMESPACE_FLAGS) {
      syscalls.push({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      });
    }
  }
  return { defaultAction: "SCMP_ACT_ALLOW", architectures: seccompArchitectures(arch), syscalls };
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
