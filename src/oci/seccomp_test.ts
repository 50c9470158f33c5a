import assert from "node:assert/strict";
import { ALL_CAPS, DEFAULT_CAPS } from "./generate.ts";
import {
  allowedSyscalls,
  CLONE_NAMESPACE_FLAGS,
  defaultSeccompProfile,
  parseSeccompProfile,
  PERSONALITY_ALLOWED,
  type SeccompArg,
  type SeccompProfile,
} from "./seccomp.ts";

/** docker's default profile, its rules only (see the file's "source"). */
interface DockerRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[] };
}
const DOCKER = JSON.parse(
  Deno.readTextFileSync(
    new URL("../../tests/fixtures/seccomp/docker-default.json", import.meta.url),
  ),
) as { defaultAction: string; defaultErrnoRet: number; syscalls: DockerRule[] };

/** docker's arch names for the two rkl builds. */
const GOARCH: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };

function compare(a: SeccompArg, args: number[]): boolean {
  const x = args[a.index] ?? 0;
  switch (a.op) {
    case "SCMP_CMP_EQ":
      return x === a.value;
    case "SCMP_CMP_NE":
      return x !== a.value;
    case "SCMP_CMP_LT":
      return x < a.value;
    case "SCMP_CMP_LE":
      return x <= a.value;
    case "SCMP_CMP_GT":
      return x > a.value;
    case "SCMP_CMP_GE":
      return x >= a.value;
    case "SCMP_CMP_MASKED_EQ":
      return Number(BigInt(x) & BigInt(a.value)) === (a.valueTwo ?? 0);
  }
}

type Verdict = "allow" | `errno ${number}`;

/** What a profile does with one call, the way libseccomp runs it: matching rules' action, else the default. */
function verdict(p: SeccompProfile, name: string, args: number[]): Verdict {
  const hits = new Set<Verdict>();
  for (const r of p.syscalls) {
    if (!r.names.includes(name)) continue;
    if (r.args && !r.args.every((a) => compare(a, args))) continue;
    hits.add(r.action === "SCMP_ACT_ALLOW" ? "allow" : `errno ${r.errnoRet ?? 1}`);
  }
  assert.ok(hits.size <= 1, `${name}(${args}): rules disagree: ${[...hits]}`);
  return [...hits][0] ??
    (p.defaultAction === "SCMP_ACT_ALLOW" ? "allow" : `errno ${p.defaultErrnoRet ?? 1}`);
}

/** docker's profile as its daemon specialises it for a container holding `caps` on `arch` (kernel >= 4.8). */
function dockerFor(caps: readonly string[], arch: string): SeccompProfile {
  const goarch = GOARCH[arch];
  const syscalls = DOCKER.syscalls.filter((r) => {
    const inc = r.includes ?? {}, exc = r.excludes ?? {};
    if (inc.arches && !inc.arches.includes(goarch)) return false;
    if (inc.caps && !inc.caps.every((c) => caps.includes(c))) return false;
    if (exc.arches?.includes(goarch)) return false;
    if (exc.caps?.some((c) => caps.includes(c))) return false;
    return true;
  }).map((r) => ({ ...r, args: r.args as SeccompArg[] | undefined })) as SeccompProfile["syscalls"];
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: DOCKER.defaultErrnoRet,
    architectures: [],
    syscalls,
  };
}

/** Argument vectors worth trying: every value a rule names, one either side, and the clone flags. */
function probes(profiles: SeccompProfile[]): number[][] {
  const values = new Set<number>([0, 1, 0xffffffff]);
  for (const p of profiles) {
    for (const r of p.syscalls) {
      for (const a of r.args ?? []) {
        for (const v of [a.value, a.value - 1, a.value + 1, a.valueTwo ?? 0]) {
          if (v >= 0) values.add(v);
        }
      }
    }
  }
  for (const f of CLONE_NAMESPACE_FLAGS) values.add(f | 0x11); // SIGCHLD-ish low bits + one namespace
  values.add(0x01200011); // fork()'s clone flags
  return [...values].map((v) => [v, v]);
}

const CAP_SETS: [string, string[]][] = [
  ["default", DEFAULT_CAPS],
  ["none", []],
  ["all", ALL_CAPS],
  ...ALL_CAPS.filter((c) => !DEFAULT_CAPS.includes(c)).map((c): [string, string[]] => [
    `default + ${c}`,
    [...DEFAULT_CAPS, c],
  ]),
];

Deno.test("the default profile allows nothing docker's default refuses, for any capability set, on x86_64 and aarch64", () => {
  let calls = 0;
  for (const arch of ["x86_64", "aarch64"]) {
    for (const [label, caps] of CAP_SETS) {
      const rkl = defaultSeccompProfile(caps, arch);
      const docker = dockerFor(caps, arch);
      const names = new Set([...rkl.syscalls, ...docker.syscalls].flatMap((r) => r.names));
      for (const name of ["io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl"]) {
        names.add(name);
      }
      for (const name of names) {
        for (const args of probes([rkl, docker])) {
          calls++;
          const d = verdict(docker, name, args);
          const r = verdict(rkl, name, args);
          if (r === "allow") {
            assert.equal(
              d,
              "allow",
              `${arch}, caps ${label}: ${name}(${args[0]}) rkl allows, docker answers ${d}`,
            );
          } else if (d !== "allow") {
            assert.equal(
              r,
              d,
              `${arch}, caps ${label}: ${name}(${args[0]}): both refuse, with another errno`,
            );
          }
        }
      }
    }
  }
  assert.ok(calls > 100_000, `${calls} calls compared`);
});

Deno.test("the default profile refuses io_uring, the keyring, AF_VSOCK and AF_ALG sockets, odd personalities, namespaces", () => {
  const p = defaultSeccompProfile(DEFAULT_CAPS, "x86_64");
  assert.equal(p.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(p.defaultErrnoRet, 1);
  for (
    const n of [
      "io_uring_setup",
      "io_uring_enter",
      "io_uring_register",
      "keyctl",
      "add_key",
      "kexec_load",
      "init_module",
      "mount",
      "unshare",
      "setns",
      "ptrace",
      "bpf",
      "userfaultfd",
      "pivot_root",
      "swapon",
      "settimeofday",
      "open_by_handle_at",
      "name_to_handle_at",
      "reboot",
    ]
  ) {
    assert.equal(verdict(p, n, [0]), "errno 1", n);
  }
  assert.equal(verdict(p, "socket", [40]), "errno 1", "AF_VSOCK");
  assert.equal(verdict(p, "socket", [38]), "errno 1", "AF_ALG");
  for (const af of [1, 2, 10, 16, 17, 39, 44]) assert.equal(verdict(p, "socket", [af]), "allow");
  for (const v of PERSONALITY_ALLOWED) assert.equal(verdict(p, "personality", [v]), "allow");
  assert.equal(verdict(p, "personality", [0x0040000]), "errno 1", "ADDR_NO_RANDOMIZE");
  for (const f of CLONE_NAMESPACE_FLAGS) assert.equal(verdict(p, "clone", [f | 0x11]), "errno 1");
  assert.equal(verdict(p, "clone", [0x01200011]), "allow", "fork");
  assert.equal(verdict(p, "clone3", [0]), "errno 38");
  for (
    const n of [
      "read",
      "write",
      "execve",
      "chown",
      "kill",
      "exit_group",
      "rt_sigreturn",
      "openat",
      "chroot",
      "arch_prctl",
      "close_range",
      "rseq",
      "faccessat2",
    ]
  ) {
    assert.equal(verdict(p, n, [0]), "allow", n);
  }
}); // deno-fmt-ignore

Deno.test("a granted capability allows its syscalls, and only those", () => {
  const base = new Set(allowedSyscalls(DEFAULT_CAPS, "x86_64"));
  const added = (cap: string) =>
    allowedSyscalls([...DEFAULT_CAPS, cap], "x86_64").filter((n) => !base.has(n));
  assert.deepEqual(added("CAP_SYS_PTRACE"), [
    "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
  ]); // deno-fmt-ignore
  assert.ok(added("CAP_SYS_ADMIN").includes("mount") && added("CAP_SYS_ADMIN").includes("setns"));
  assert.ok(!added("CAP_SYS_ADMIN").includes("pivot_root"), "docker never allows pivot_root");
  assert.deepEqual(added("CAP_BPF"), ["bpf"]);
  assert.deepEqual(added("CAP_SYS_TIME"), [
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
    "settimeofday", "stime",
  ]); // deno-fmt-ignore
  const admin = defaultSeccompProfile([...DEFAULT_CAPS, "CAP_SYS_ADMIN"], "aarch64");
  assert.deepEqual(admin.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert.equal(verdict(admin, "clone", [0x10000011]), "allow");
  assert.equal(verdict(admin, "clone3", [0]), "allow");
  assert.equal(verdict(admin, "set_tls", [0]), "allow");
  assert.equal(verdict(admin, "arch_prctl", [0]), "errno 1", "x86 only");
});

Deno.test("parseSeccompProfile() takes an OCI profile and refuses what is not one", () => {
  const p = parseSeccompProfile(
    '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}',
    "p.json",
  );
  assert.equal(p.defaultAction, "SCMP_ACT_ERRNO");
  assert.throws(() => parseSeccompProfile("{", "p.json"), /p\.json: not JSON/);
  assert.throws(() => parseSeccompProfile("{}", "p.json"), /needs "defaultAction"/);
  assert.throws(
    () => parseSeccompProfile('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}', "p.json"),
    /must be a list/,
  );
});
