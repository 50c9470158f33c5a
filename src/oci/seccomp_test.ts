import assert from "node:assert/strict";
import { DEFAULT_CAPS } from "./generate.ts";
import {
  CLONE_NAMESPACE_FLAGS,
  defaultSeccompProfile,
  parseSeccompProfile,
  refusedSyscalls,
} from "./seccomp.ts";

Deno.test("the default profile refuses module, kexec, mount, ptrace and clock syscalls to a default container", () => {
  const refused = refusedSyscalls(DEFAULT_CAPS);
  for (
    const s of [
      "init_module",
      "finit_module",
      "kexec_load",
      "reboot",
      "mount",
      "umount2",
      "unshare",
      "setns",
      "ptrace",
      "settimeofday",
      "keyctl",
      "bpf",
      "open_by_handle_at",
      "swapon",
      "acct",
      "iopl",
    ]
  ) assert.ok(refused.includes(s), `${s} should be refused`);
  for (const s of ["read", "write", "clone", "execve", "chown", "kill", "socket"]) {
    assert.ok(!refused.includes(s), `${s} must stay allowed`);
  }
});

Deno.test("a granted capability lifts exactly its syscalls", () => {
  const ptrace = refusedSyscalls([...DEFAULT_CAPS, "CAP_SYS_PTRACE"]);
  assert.ok(!ptrace.includes("ptrace") && !ptrace.includes("process_vm_readv"));
  assert.ok(ptrace.includes("mount") && ptrace.includes("init_module"));
  const admin = refusedSyscalls([...DEFAULT_CAPS, "CAP_SYS_ADMIN"]);
  assert.ok(!admin.includes("mount") && !admin.includes("unshare") && !admin.includes("bpf"));
  assert.ok(admin.includes("init_module") && admin.includes("kexec_load"));
  const bpf = refusedSyscalls([...DEFAULT_CAPS, "CAP_BPF"]);
  assert.ok(!bpf.includes("bpf") && bpf.includes("mount"));
});

Deno.test("without CAP_SYS_ADMIN, clone with a namespace flag is refused and clone3 says ENOSYS", () => {
  const p = defaultSeccompProfile(DEFAULT_CAPS, "x86_64");
  assert.deepEqual(p.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  assert.equal(p.defaultAction, "SCMP_ACT_ALLOW");
  const clone = p.syscalls.filter((r) => r.names.includes("clone"));
  assert.equal(clone.length, CLONE_NAMESPACE_FLAGS.length);
  for (const r of clone) {
    const a = r.args![0];
    assert.equal(a.op, "SCMP_CMP_MASKED_EQ");
    assert.equal(a.value, a.valueTwo); // (flags & F) == F
  }
  assert.deepEqual(p.syscalls.find((r) => r.names.includes("clone3"))?.errnoRet, 38);
  const admin = defaultSeccompProfile([...DEFAULT_CAPS, "CAP_SYS_ADMIN"], "aarch64");
  assert.deepEqual(admin.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert.ok(!admin.syscalls.some((r) => r.names.includes("clone") || r.names.includes("clone3")));
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
