/**
 * Inputs with no end (issue 29, item 4): every file rkl reads because a user
 * or a spec named it, pointed at /dev/zero, /dev/urandom or a FIFO nobody
 * writes, and files over the caps. Each must be refused at once with exit 2
 * and one line naming the file, in bounded memory, with nothing made; in
 * process and through the thin client (the daemon stays small and keeps
 * serving). Image configs, manifests and records larger than their caps
 * are refused with their digest before they are read.
 *
 * Memory is measured, and bounded, by a cgroup v1 memory controller per rkl
 * process (memory.max_usage_in_bytes, limit 768 MiB): before the fix
 * `pod run /dev/zero` grew to GBs, so a regression is killed by the cgroup
 * and fails here instead of taking the host down. A FIFO hang is cut by a
 * timeout.
 */
import assert from "node:assert/strict";
import {
  censusTests,
  cleanupAfterAll,
  makeEnv,
  rkl,
  rklArgv,
  type RklEnv,
  waitForSocket,
} from "../_helpers/env.ts";
import { REPO, requires } from "../_helpers/requires.ts";

const MEMCG = "/sys/fs/cgroup/memory";
const memcg = (() => {
  try {
    return Deno.statSync(`${MEMCG}/memory.limit_in_bytes`).isFile;
  } catch {
    return false;
  }
})();
if (!memcg && Deno.env.get("CI") === "true") {
  throw new Error("inputs_test needs the cgroup v1 memory controller at /sys/fs/cgroup/memory");
}
const ready = memcg && requires("root", "conmon", "cni", "iptables", "ip", "bundles", "youki");
const env = ready ? await makeEnv("inputs", 20) : undefined;
const { test } = censusTests(ready, () => env!);
// Compose files say `image: ../bundles/busybox`.
if (env) Deno.symlinkSync(`${REPO}/bundles`, `${env.dir}/bundles`);

/** Every path under the state roots: nothing may be added by a refused command. */
function tree(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      out.push(p);
      if (e.isDirectory) walk(p);
    }
  };
  walk(env!.root);
  walk(env!.runRoot);
  return out.sort();
}

const MiB = 1 << 20;
/** What one refused command may cost: Deno + rkl's modules are ~60-100 MiB with page cache. */
const PEAK_MAX = 250 * MiB;
const LIMIT = 768 * MiB;
const TIMEOUT_MS = 30_000;

interface Bounded {
  code: number;
  stdout: string;
  stderr: string;
  peak: number;
  ms: number;
  timedOut: boolean;
}

let cgCount = 0;

/** A memory cgroup of its own with a hard limit; `run` gets its path. */
async function inMemcg<T>(fn: (cg: string) => Promise<T>): Promise<T> {
  const cg = `${MEMCG}/rkltest-inputs-${Deno.pid}-${cgCount++}`;
  Deno.mkdirSync(cg);
  try {
    Deno.writeTextFileSync(`${cg}/memory.limit_in_bytes`, String(LIMIT));
    try {
      Deno.writeTextFileSync(`${cg}/memory.memsw.limit_in_bytes`, String(LIMIT));
    } catch { /* no swap accounting */ }
    return await fn(cg);
  } finally {
    for (let i = 0; i < 100; i++) {
      try {
        Deno.removeSync(cg);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** `sh` that moves itself into `cg`, then execs rkl from source. */
function rklCommand(cg: string, e: RklEnv, args: string[], extra: Record<string, string> = {}) {
  return {
    cmd: "sh",
    args: [
      "-c",
      `echo $$ > ${cg}/cgroup.procs && exec "$0" "$@"`,
      ...rklArgv(args),
    ],
    env: { ...e.env, ...extra },
  };
}

/** Runs rkl in a memory cgroup and under a timeout: its result, peak memory and time. */
function bounded(
  args: string[],
  o: { cwd?: string; env?: Record<string, string>; daemon?: boolean } = {},
): Promise<Bounded> {
  return inMemcg(async (cg) => {
    const c = rklCommand(cg, env!, args, {
      ...(o.daemon ? {} : { RKL_NO_DAEMON: "1" }),
      ...o.env,
    });
    const t0 = performance.now();
    const child = new Deno.Command(c.cmd, {
      args: c.args,
      env: c.env,
      cwd: o.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, TIMEOUT_MS);
    const out = await child.output();
    clearTimeout(timer);
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      peak: Number(Deno.readTextFileSync(`${cg}/memory.max_usage_in_bytes`)),
      ms: performance.now() - t0,
      timedOut,
    };
  });
}

/** Exit `code` (2: user input), one line matching `want`, quickly, in bounded memory. */
function assertRefused(label: string, r: Bounded, want: RegExp, code = 2): void {
  const mib = (r.peak / MiB).toFixed(0);
  assert.ok(!r.timedOut, `${label}: still running after ${TIMEOUT_MS / 1000} s (hung)`);
  assert.equal(
    r.code,
    code,
    `${label}: exit ${r.code} (peak ${mib} MiB): ${r.stderr.slice(0, 400)}`,
  );
  assert.match(r.stderr, want, label);
  assert.equal(r.stderr.trim().split("\n").length, 1, `${label}: one line, got ${r.stderr}`);
  assert.ok(r.peak < PEAK_MAX, `${label}: peak memory ${mib} MiB`);
}

const POD = (name: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - {name: main, image: ${REPO}/bundles/busybox, command: [sleep, '600']}\n`;

/** The three endless inputs, made in `dir` under `name` (a symlink to a device, or a FIFO). */
const ENDLESS = ["/dev/zero", "/dev/urandom", "fifo"] as const;
type Endless = typeof ENDLESS[number];
const KIND: Record<Endless, RegExp> = {
  "/dev/zero": /not a regular file \(a character device\)/,
  "/dev/urandom": /not a regular file \(a character device\)/,
  fifo: /not a regular file \(a FIFO\)/,
};

function plant(dir: string, name: string, what: Endless): string {
  const path = `${dir}/${name}`;
  try {
    Deno.removeSync(path);
  } catch { /* none */ }
  if (what === "fifo") {
    const r = new Deno.Command("mkfifo", { args: [path] }).outputSync();
    assert.equal(r.code, 0);
  } else Deno.symlinkSync(what, path);
  return path;
}

function workDir(name: string): string {
  const d = `${env!.dir}/${name}`;
  Deno.mkdirSync(d, { recursive: true });
  return d;
}

/** Every file input, each pointed at `what`: [label, argv, cwd, extra env, error pattern]. */
function cases(what: Endless): [string, string[], string, Record<string, string>, RegExp][] {
  const tag = what.replace(/\W/g, "");
  const d = workDir(`in-${tag}`);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  Deno.writeTextFileSync(`${d}/pod.yaml`, POD(`in-${tag}`));
  const x = plant(d, "x.yaml", what);
  const named = new RegExp(`${esc(x)}: Cannot read file: ${KIND[what].source}`);
  const out: [string, string[], string, Record<string, string>, RegExp][] = [
    ["pod run FILE", ["pod", "run", "--network", env!.network, x], d, {}, named],
    ["pod run --configmap FILE", ["pod", "run", "--configmap", x, "pod.yaml"], d, {}, named],
    ["pod validate FILE", ["pod", "validate", x], d, {}, named],
    ["container run FILE", ["container", "run", x], d, {}, named],
    ["compose -f FILE up -d", ["compose", "-f", x, "up", "-d"], d, {}, named],
  ];
  // .env beside the compose file.
  const dot = workDir(`dotenv-${tag}`);
  Deno.writeTextFileSync(
    `${dot}/compose.yaml`,
    "services:\n  web:\n    image: ../bundles/busybox\n    network_mode: none\n",
  );
  plant(dot, ".env", what);
  out.push([
    ".env",
    ["compose", "up", "-d"],
    dot,
    {},
    new RegExp(`${esc(dot)}/\\.env: Cannot read file: ${KIND[what].source}`),
  ]);
  // env_file, and configs/secrets files.
  const ef = workDir(`envfile-${tag}`);
  plant(ef, "vars.env", what);
  Deno.writeTextFileSync(
    `${ef}/compose.yaml`,
    "services:\n  web:\n    image: ../bundles/busybox\n    network_mode: none\n    env_file: vars.env\n",
  );
  out.push([
    "env_file",
    ["compose", "up", "-d"],
    ef,
    {},
    new RegExp(
      `compose\\.yaml:5:\\d+: services\\.web\\.env_file: Cannot read ${esc(ef)}/vars\\.env: ${
        KIND[what].source
      }`,
    ),
  ]);
  for (const kind of ["configs", "secrets"]) {
    const cd = workDir(`${kind}-${tag}`);
    plant(cd, "data", what);
    Deno.writeTextFileSync(
      `${cd}/compose.yaml`,
      // No network_mode: convert refuses `none`; up reads the files before making a network.
      `services:\n  web:\n    image: ../bundles/busybox\n    ${kind}: [d]\n${kind}:\n  d:\n    file: ./data\n`,
    );
    out.push([
      `compose ${kind} file`,
      ["compose", "up", "-d"],
      cd,
      {},
      new RegExp(
        `compose\\.yaml: ${kind}\\.d\\.file: Cannot read ${esc(cd)}/data: ${KIND[what].source}`,
      ),
    ]);
    out.push([
      `compose convert ${kind} file`,
      ["compose", "convert"],
      cd,
      {},
      new RegExp(`${esc(cd)}/data: Cannot read file: ${KIND[what].source}`),
    ]);
  }
  // registries.yaml and auth.json, named by the environment.
  out.push([
    "RKL_REGISTRIES_CONFIG",
    ["image", "pull", "127.0.0.1:1/x/y:1"],
    d,
    { RKL_REGISTRIES_CONFIG: x },
    new RegExp(`${esc(x)}: Cannot read registries config: ${KIND[what].source}`),
  ]);
  out.push([
    "REGISTRY_AUTH_FILE",
    ["image", "pull", "127.0.0.1:1/x/y:1"],
    d,
    { REGISTRY_AUTH_FILE: x },
    new RegExp(`${esc(x)}: Cannot read auth file: ${KIND[what].source}`),
  ]);
  out.push([
    "image import ARCHIVE",
    ["image", "import", x],
    d,
    {},
    new RegExp(`Cannot import ${esc(x)}: ${KIND[what].source}`),
  ]);
  return out;
}

test("/dev/zero, /dev/urandom and a FIFO as every file input: exit 2, one line, bounded memory, nothing made", async () => {
  const warm = await rkl(env!, ["pod", "list"]);
  assert.equal(warm.code, 0, warm.stderr);
  const before = tree();
  for (const what of ENDLESS) {
    for (const [label, args, cwd, extra, want] of cases(what)) {
      const r = await bounded(args, { cwd, env: extra });
      assertRefused(`${what}: ${label}`, r, want);
    }
  }
  assert.deepEqual(tree(), before, "a refused command left something under the state roots");
  // A seccomp Localhost profile (read from ROOT/seccomp) that is a FIFO.
  const sd = `${env!.root}/seccomp`;
  Deno.mkdirSync(sd, { recursive: true });
  plant(sd, "p.json", "fifo");
  const d = workDir("seccomp");
  Deno.writeTextFileSync(
    `${d}/pod.yaml`,
    POD("sec").replace(
      "command: [sleep, '600']}",
      "command: [sleep, '600'], securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}}",
    ),
  );
  assertRefused(
    "seccomp profile",
    await bounded(["pod", "run", "--network", "none", "pod.yaml"], { cwd: d }),
    /pod\.yaml:\d+:\d+: .*Cannot read seccomp profile .*p\.json: not a regular file \(a FIFO\)/,
  );
  Deno.removeSync(sd, { recursive: true });
});

test("regular files over the caps are refused after reading 1 MiB + 1, naming the cap", async () => {
  const d = workDir("big");
  // Sparse: 1 GiB on disk costs nothing; read whole it would cost 1 GiB.
  const big = `${d}/big.yaml`;
  const f = Deno.openSync(big, { write: true, create: true });
  f.truncateSync(1 << 30);
  f.close();
  const just = `${d}/just.yaml`;
  Deno.writeTextFileSync(just, "#".repeat(MiB) + "\n");
  for (const file of [big, just]) {
    assertRefused(
      `pod run ${file}`,
      await bounded(["pod", "run", file]),
      new RegExp(`Cannot read file: larger than 1048576 bytes \\(1 MiB\\)`),
    );
  }
  // A symlink to a regular file is followed, as before.
  Deno.writeTextFileSync(
    `${d}/real.yaml`,
    "apiVersion: v1\nkind: Pod\nmetadata: {name: 1nvalid}\n",
  );
  Deno.symlinkSync(`${d}/real.yaml`, `${d}/link.yaml`);
  const r = await bounded(["pod", "validate", `${d}/link.yaml`]);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stderr, /Cannot read/);
});

test("through the thin client: the daemon refuses the same inputs, stays small and keeps serving", async () => {
  const manifests = workDir("manifests");
  await inMemcg(async (cg) => {
    const c = rklCommand(cg, env!, [
      "daemon",
      "--manifests",
      manifests,
      "--network",
      env!.network,
      "--no-cri",
    ]);
    const daemon = new Deno.Command(c.cmd, {
      args: c.args,
      env: c.env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log = new Response(daemon.stderr).text();
    const sock = `${env!.runRoot}/cli.sock`;
    try {
      await waitForSocket("cli socket", sock, 30_000);
      // One served command first: the daemon's modules are loaded, its size settled.
      const warm = await rkl(env!, ["pod", "list", "-q"]);
      assert.equal(warm.code, 0, warm.stderr);
      const before = Number(Deno.readTextFileSync(`${cg}/memory.usage_in_bytes`));
      let served = 0;
      for (const what of ENDLESS) {
        for (const [label, args, cwd, extra, want] of cases(what)) {
          // Only what the daemon serves, with the daemon's environment.
          if (Object.keys(extra).length > 0 || args[0] === "image" || args[1] === "convert") {
            continue;
          }
          if (args[0] === "pod" && args[1] === "validate") continue;
          const r = await bounded(args, { cwd, daemon: true });
          assertRefused(`thin client, ${what}: ${label}`, r, want);
          served++;
          // The daemon answers the next command at once (a FIFO read would block its event loop).
          const next = await bounded(["pod", "list", "-q"], { daemon: true });
          assert.equal(next.code, 0, `after ${label}: ${next.stderr}`);
          assert.ok(next.ms < 10_000, `after ${label}: pod list took ${next.ms} ms`);
        }
      }
      // A request line with no end: the daemon reads 1 MiB of it and hangs up.
      const conn = await Deno.connect({ transport: "unix", path: sock });
      const junk = new Uint8Array(MiB).fill(0x61);
      try {
        for (let i = 0; i < 64; i++) await conn.write(junk);
      } catch { /* closed by the daemon: expected */ }
      conn.close();
      const peak = Number(Deno.readTextFileSync(`${cg}/memory.max_usage_in_bytes`));
      assert.ok(
        peak - before < 150 * MiB,
        `the daemon grew from ${(before / MiB).toFixed(0)} to a peak of ${
          (peak / MiB).toFixed(0)
        } MiB`,
      );
      const after = await bounded(["pod", "list", "-q"], { daemon: true });
      assert.equal(after.code, 0, after.stderr);
      assert.equal(served, 24, "commands served");
    } finally {
      try {
        daemon.kill("SIGTERM");
      } catch { /* gone */ }
      await daemon.status;
    }
    const text = await log;
    assert.match(text, /cli: served pod run \(exit 2\)/);
    assert.match(text, /cli: served compose up \(exit 2\)/);
    assert.doesNotMatch(text, /cli: not served/);
  });
});

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return `sha256:${Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

test("a 200 MB image config is refused with its digest before it is fetched; so are lying and oversized ones", async () => {
  // The config: valid JSON, padded with a 200 MB label.
  const head = new TextEncoder().encode(
    '{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"pad":"',
  );
  const tail = new TextEncoder().encode('"}}}');
  const big = new Uint8Array(head.length + 200_000_000 + tail.length).fill(0x61);
  big.set(head, 0);
  big.set(tail, big.length - tail.length);
  const bigDigest = await sha256(big);
  const manifest = (digest: string, size: number) =>
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size },
      layers: [],
    });
  const hugeManifest = new Uint8Array(20 * MiB).fill(0x20);
  let configAsks = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    const mt = { "content-type": "application/vnd.oci.image.manifest.v1+json" };
    if (u.pathname.endsWith("/manifests/big")) {
      return new Response(manifest(bigDigest, big.length), { headers: mt });
    }
    // Says 1000 bytes, sends 200 MB: cut off at the descriptor's size.
    if (u.pathname.endsWith("/manifests/liar")) {
      return new Response(manifest(bigDigest, 1000), { headers: mt });
    }
    // A 20 MiB manifest body (no descriptor to refuse it by): cut off at 4 MiB.
    if (u.pathname.endsWith("/manifests/fat")) {
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(hugeManifest);
            c.close();
          },
        }),
        { headers: mt },
      );
    }
    if (u.pathname.endsWith(`/blobs/${bigDigest}`)) {
      configAsks++;
      return new Response(big);
    }
    return new Response("{}", { status: 404 });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  const pullEnv = { RKL_PULL_TIMEOUT: "20" };
  try {
    const r = await bounded(["image", "pull", `${host}/x/big:big`], { env: pullEnv });
    assertRefused(
      "pull, 200 MB config",
      r,
      new RegExp(
        `image config ${bigDigest} is ${big.length} bytes; rkl reads image configs up to 4194304 bytes \\(4 MiB\\)`,
      ),
      1,
    );
    assert.equal(configAsks, 0, "the config is refused before it is fetched");
    const liar = await bounded(["image", "pull", `${host}/x/liar:liar`], { env: pullEnv });
    assertRefused(
      "pull, config larger than its descriptor",
      liar,
      new RegExp(`blob ${bigDigest}: larger than its descriptor's 1000 bytes`),
      1,
    );
    const fat = await bounded(["image", "pull", `${host}/x/fat:fat`], { env: pullEnv });
    assertRefused(
      "pull, 20 MiB manifest",
      fat,
      /manifest for fat is larger than 4194304 bytes \(4 MiB\)/,
      1,
    );
  } finally {
    await server.shutdown();
  }
  const store = `${env!.root}/images`;
  for (const sub of ["blobs/sha256", "images"]) {
    const left = [...(function* () {
      try {
        yield* Deno.readDirSync(`${store}/${sub}`);
      } catch { /* none */ }
    })()].map((e) => e.name);
    assert.deepEqual(left, [], `${sub}: nothing stored`);
  }

  // A record an older rkl wrote for such an image (its 64 MB config inside):
  // inspect refuses it unread, ls leaves it out, rm removes it.
  const id = await sha256(new TextEncoder().encode("old"));
  const hex = id.slice(7);
  Deno.mkdirSync(`${store}/images`, { recursive: true });
  Deno.mkdirSync(`${store}/tags`, { recursive: true });
  const rec = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 1,
      id,
      manifestDigest: id,
      repoDigests: [],
      layers: [],
      size: 0,
      os: "linux",
      architecture: "amd64",
      config: { Labels: { pad: "a".repeat(64_000_000) } },
      pulledAt: new Date().toISOString(),
    }),
  );
  Deno.writeFileSync(`${store}/images/${hex}.json`, rec);
  const tagName = "127.0.0.1:1/old/img:v1";
  Deno.writeTextFileSync(
    `${store}/tags/${encodeURIComponent(tagName)}.json`,
    JSON.stringify({ name: tagName, id, manifestDigest: id }),
  );
  const oversized = new RegExp(`Cannot read image ${id}: its record is larger than 16777216 bytes`);
  assertRefused("inspect by tag", await bounded(["image", "inspect", tagName]), oversized, 1);
  assertRefused(
    "inspect by id",
    await bounded(["image", "inspect", hex.slice(0, 12)]),
    oversized,
    1,
  );
  const ls = await bounded(["image", "ls"]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(ls.peak < PEAK_MAX, `image ls peak ${(ls.peak / MiB).toFixed(0)} MiB`);
  const rm = await bounded(["image", "rm", tagName]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, new RegExp(`Deleted: ${id}`));
  assert.ok(rm.peak < PEAK_MAX);
  assert.deepEqual([...Deno.readDirSync(`${store}/images`)], []);
  assert.deepEqual([...Deno.readDirSync(`${store}/tags`)], []);
});

cleanupAfterAll(env);
