/**
 * The artifacts a user copies to a bare host: built by scripts/dist.sh, then
 * run from a temporary directory with a PATH and HOME where no deno exists
 * and an empty state root: --version, doctor, the seed container with its
 * limits checked, rm -f, the host census; two copies starting at once
 * unpack once; `daemon install` runs the artifact itself; the aarch64 one
 * answers --version under qemu-user.
 */
import assert from "node:assert/strict";
import { censusTests, cleanupAfterAll, makeEnv } from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const ready = requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki", "npm");
const emulated = requires("qemu-aarch64");
const env = ready ? await makeEnv("dist", 11) : undefined;
const { test } = censusTests(ready, () => env!);

let built: string | undefined;
/** Builds both artifacts once per file run. */
async function artifacts(): Promise<string> {
  if (built) return built;
  const out = `${env!.dir}/out`;
  const r = await new Deno.Command("bash", {
    args: [`${REPO}/scripts/dist.sh`, out],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  built = out;
  return out;
}

/**
 * A PATH with everything the host has but deno: one directory of links to
 * every program in the usual bin dirs, deno left out.
 */
function barePath(): string {
  const bin = `${env!.dir}/bin`;
  try {
    Deno.statSync(bin);
    return bin;
  } catch { /* make it */ }
  Deno.mkdirSync(bin);
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    for (
      const e of (() => {
        try {
          return [...Deno.readDirSync(d)];
        } catch {
          return [];
        }
      })()
    ) {
      if (e.name === "deno" || e.isDirectory) continue;
      try {
        Deno.symlinkSync(`${d}/${e.name}`, `${bin}/${e.name}`);
      } catch { /* an earlier dir has it */ }
    }
  }
  return bin;
}

/** Runs `argv` with a PATH and HOME where no deno exists. */
async function bare(
  argv: string[],
  extraEnv: Record<string, string> = {},
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    clearEnv: true,
    env: { PATH: barePath(), HOME: `${env!.dir}/home`, ...env!.env, ...extraEnv },
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
}

test("the x86_64 artifact runs on a host without deno: version, doctor, the seed container, rm", async () => {
  const out = await artifacts();
  const dir = `${env!.dir}/bare`;
  await Deno.mkdir(`${env!.dir}/home`, { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(`${out}/rkl-x86_64-linux`, `${dir}/rkl`);
  await Deno.chmod(`${dir}/rkl`, 0o755);
  // No deno here: the artifact brings its own.
  const none = await bare(["/bin/sh", "-c", "command -v deno"]);
  assert.notEqual(none.code, 0, "deno must not be runnable in the bare environment");

  const v = await bare([`${dir}/rkl`, "--version"]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout, "rkl 0.1.0\n");
  // what the daemon's unit sets: the launcher adds the daemon's deno flags
  const vd = await bare([`${dir}/rkl`, "--version"], { RKL_DAEMON_DENO_FLAGS: "1" });
  assert.equal(vd.code, 0, vd.stderr);
  assert.equal(vd.stdout, "rkl 0.1.0\n");
  const unpacked = [...Deno.readDirSync(`${env!.root}/dist`)].map((e) => e.name);
  assert.equal(unpacked.length, 1);
  assert.match(unpacked[0], /^0\.1\.0-[0-9a-f]{12}$/);

  const doctor = await bare([`${dir}/rkl`, "doctor"]);
  assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
  assert.match(doctor.stdout, /this host can run rkl/);

  await Deno.writeTextFile(
    `${dir}/single.yaml`,
    (await Deno.readTextFile(`${REPO}/tests/fixtures/single.yaml`)).replace(
      "./bundles/busybox",
      `${REPO}/bundles/busybox`,
    ),
  );
  const run = await bare(
    [`${dir}/rkl`, "container", "run", "--network", env!.network, "single.yaml"],
    {},
    dir,
  );
  assert.equal(run.code, 0, run.stderr);
  const limits = await bare([
    `${dir}/rkl`,
    "container",
    "exec",
    "single-container-test",
    "cat",
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
  ]);
  assert.equal(limits.stdout, `50000\n${233 * 2 ** 20}\n`, limits.stderr);
  const rm = await bare([`${dir}/rkl`, "container", "rm", "-f", "single-container-test"]);
  assert.equal(rm.code, 0, rm.stderr);

  // daemon install: the unit runs the artifact itself.
  const inst = await bare([
    `${dir}/rkl`,
    "daemon",
    "install",
    "--manifests",
    `${env!.dir}/manifests`,
  ], {
    RKL_INSTALL_ROOT: `${env!.dir}/install`,
  });
  assert.equal(inst.code, 0, inst.stdout + inst.stderr);
  const unit = await Deno.readTextFile(`${env!.dir}/install/etc/systemd/system/rkl.service`);
  assert.match(unit, new RegExp(`^ExecStart=${dir}/rkl daemon `, "m"));
});

test("two copies started at once unpack once, and a damaged artifact is refused", async () => {
  const out = await artifacts();
  const dir = `${env!.dir}/twice`;
  await Deno.mkdir(dir, { recursive: true });
  for (const n of ["a", "b"]) await Deno.copyFile(`${out}/rkl-x86_64-linux`, `${dir}/${n}`);
  const root = `${env!.dir}/root2`;
  const [a, b] = await Promise.all(
    ["a", "b"].map((n) => bare([`${dir}/${n}`, "--version"], { RKL_ROOT: root })),
  );
  assert.deepEqual([a.code, a.stdout, b.code, b.stdout], [0, "rkl 0.1.0\n", 0, "rkl 0.1.0\n"]);
  assert.deepEqual([...Deno.readDirSync(`${root}/dist`)].map((e) => e.name).length, 1);
  await Deno.remove(root, { recursive: true });

  // One flipped byte in the payload: refused before anything runs, nothing unpacked.
  const bytes = await Deno.readFile(`${dir}/a`);
  bytes[bytes.length - 1000] ^= 0xff;
  await Deno.writeFile(`${dir}/a`, bytes);
  const bad = await bare([`${dir}/a`, "--version"], { RKL_ROOT: root });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /is damaged \(its payload does not match sha256/);
  assert.deepEqual([...Deno.readDirSync(`${root}/dist`)].map((e) => e.name), []);
  await Deno.remove(root, { recursive: true });
});

Deno.test({
  name: "the aarch64 artifact answers --version under qemu-user",
  ignore: !ready || !emulated,
  sanitizeResources: false,
  fn: async () => {
    const out = await artifacts();
    const root = `${env!.dir}/root-arm`;
    const r = await bare([`${out}/rkl-aarch64-linux`, "--version"], {
      RKL_ROOT: root,
      RKL_DIST_WRAPPER: "qemu-aarch64-static",
      QEMU_LD_PREFIX: "/usr/aarch64-linux-gnu",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "rkl 0.1.0\n");
    const file = await new Deno.Command("sh", {
      args: [
        "-c",
        `file -b ${root}/dist/*/deno 2>/dev/null || od -An -tx1 -j18 -N2 ${root}/dist/*/deno`,
      ],
      stdout: "piped",
    }).output();
    // ELF e_machine 0xb7 = AArch64.
    assert.match(new TextDecoder().decode(file.stdout), /aarch64|ARM aarch64|b7 00/);
    await Deno.remove(root, { recursive: true });
  },
});

cleanupAfterAll(env);
