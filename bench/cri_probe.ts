/**
 * The CRI's per-call cost without root: rkl's real CRI handlers and gRPC
 * server over an FsStore of N fake running containers (each "running" as a
 * `sleep` this probe starts), in a deno process with the daemon's flags, and
 * a grpc-js client in this one, as bench/containerd.ts drives it.
 *
 *   deno run -A bench/cri_probe.ts [N]           # client: starts the server, prints figures
 *   deno run -A bench/cri_probe.ts --serve DIR N  # the server (started by the client)
 *
 * It times each call from the client (cold: the first calls of a method, as
 * the bench makes a dozen of each; then warm) and, inside the server, the
 * handler alone (decode, handler, encode), so the rest is the HTTP/2 and
 * gRPC path and the client. Nothing here needs root or makes containers.
 */
import { DAEMON_DENO_FLAGS, DAEMON_ENV } from "../src/daemon/install.ts";

const N = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? "20");

async function serve(dir: string, n: number) {
  const { FsStore } = await import("../src/store/store.ts");
  const { recordValidators } = await import("../src/workloads/records.ts");
  const { containerDirs } = await import("../src/workloads/host.ts");
  const { realFs } = await import("../src/sys/fs.ts");
  const { procStat } = await import("../src/sys/procstat.ts");
  const { criSandbox, criContainer } = await import("../src/cri/server/_testing.ts");
  const { serveCri } = await import("../src/cri/grpc.ts");
  const { criHandlers } = await import("../src/cri/service.ts");
  type ContainerRecord = import("../src/workloads/container.ts").ContainerRecord;
  const paths = {
    root: `${dir}/root`,
    runRoot: `${dir}/run`,
    logDir: `${dir}/logs`,
    cniConfDir: `${dir}/cni`,
    tag: "probe",
  };
  const cgroupParent = "rklprobe";
  const store = new FsStore(
    `${paths.root}/records`,
    `${paths.root}/rkl.lock`,
    // deno-lint-ignore no-explicit-any
    recordValidators({ paths, cgroupParent } as any),
  );
  Deno.mkdirSync(`${paths.root}/exits`, { recursive: true });
  const sleeps: Deno.ChildProcess[] = [];
  const hex = (i: number, c: string) => (c + i.toString(16)).padStart(64, c).slice(-64);
  const fakeT = { root: dir, states: new Map() };
  for (let i = 0; i < n; i++) {
    const pid = hex(i, "a");
    const cid = hex(i, "c");
    store.put("pods", criSandbox(pid, { cgroupPath: `${cgroupParent}/pod-${pid}` }));
    const child = new Deno.Command("sleep", { args: ["3600"] }).spawn();
    sleeps.push(child);
    const rec = criContainer(
      // deno-lint-ignore no-explicit-any
      fakeT as any,
      cid,
      { sandboxId: pid, status: "running" },
      {
        dirs: { ...containerDirs(paths, cid), log: `${dir}/logs/${cid}.log` },
        runtime: { name: "youki", binary: "/bin/false", root: `${paths.runRoot}/runtime/youki` },
        cgroupPath: `${cgroupParent}/pod-${pid}/${cid}`,
        pid: child.pid,
        pidStart: procStat(child.pid)!.startTime,
        startedAt: "2026-01-02T03:04:06.000Z",
      },
    );
    store.put("containers", rec);
  }
  // deno-lint-ignore no-explicit-any
  const host: any = {
    store,
    fs: realFs,
    proc: { self: Deno.pid, stat: procStat },
    paths,
    cgroupParent,
    cgroups: { version: 1, usage: () => undefined, pids: () => [] },
    // `start` for PROBE_FRESH's StartContainer: the fake containers' processes run already.
    runtimeFor: () => ({ state: () => Promise.resolve(undefined), start: () => Promise.resolve() }),
    now: () => new Date(),
    sleep: (ms: number) => new Promise((r) => setTimeout(r, ms)),
    warn: () => {},
  };
  const handlers = criHandlers(host, { network: null, version: "probe" });
  // The handler's own time (the server's decode and encode aside), by method.
  const inner: Record<string, number[]> = {};
  for (const [name, h] of Object.entries(handlers.runtime)) {
    handlers.runtime[name] = async (req, call) => {
      const t0 = performance.now();
      try {
        return await h(req, call);
      } finally {
        (inner[name] ??= []).push(performance.now() - t0);
      }
    };
  }
  // Between rounds the client may ask for full collections, as the daemon's
  // own work and its idle collector make them between a bench's calls.
  handlers.runtime.Status = () => {
    for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
    return Promise.resolve({});
  };
  // PROBE_FRESH: a new container's record before each ContainerStatus, made
  // "created" here (with some garbage, as a start makes it) and started by
  // the client's StartContainer, whose handler writes it running as in the
  // daemon (the bench asks each container's status once, right after).
  let fresh = 0;
  const first = store.get<ContainerRecord>("containers", hex(0, "c"))!;
  handlers.runtime.UpdateRuntimeConfig = () => {
    const id = hex(0x100000 + fresh++, "d");
    store.put("containers", {
      ...first,
      status: "created",
      name: id,
      id,
      dirs: { ...containerDirs(paths, id), log: `${dir}/logs/${id}.log` },
      cgroupPath: `${cgroupParent}/pod-${hex(0, "a")}/${id}`,
    }, { durable: false });
    let junk: unknown[] = [];
    for (let i = 0; i < 20_000; i++) junk.push({ i, s: `x${i}` });
    junk = [];
    return Promise.resolve({});
  };
  const server = await serveCri(handlers, { socket: `${dir}/cri.sock` });
  Deno.writeTextFileSync(`${dir}/ready`, "");
  // The client asks for the figures by a file, and ends us with SIGTERM.
  Deno.addSignalListener("SIGTERM", async () => {
    Deno.writeTextFileSync(`${dir}/inner.json`, JSON.stringify(inner));
    Deno.writeTextFileSync(`${dir}/rss`, String(Deno.memoryUsage().rss));
    await server.close();
    for (const c of sleeps) c.kill("SIGKILL");
    Deno.exit(0);
  });
}

async function client() {
  // Here, not at the top: the server (this file too) loads no gRPC client.
  const { clientFor, stat } = await import("./containerd.ts");
  const dir = Deno.makeTempDirSync({ prefix: "rkl-cri-probe-" });
  const extra = (Deno.env.get("PROBE_V8_FLAGS") ?? "").trim();
  const v8 = DAEMON_ENV.DENO_V8_FLAGS + (extra ? `,${extra}` : "");
  const profile = Deno.env.get("PROBE_CPU_PROF");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...DAEMON_DENO_FLAGS,
      ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []),
      "-A",
      "--quiet",
      new URL(import.meta.url).pathname,
      "--serve",
      dir,
      String(N),
    ],
    env: { ...DAEMON_ENV, DENO_V8_FLAGS: v8 },
  }).spawn();
  for (let i = 0; i < 600; i++) {
    try {
      Deno.statSync(`${dir}/ready`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const c = clientFor(`${dir}/cri.sock`);
  const cid = "c".repeat(64 - 1) + "0";
  const cold = Number(Deno.env.get("PROBE_COLD") ?? "12");
  const warm = Number(Deno.env.get("PROBE_WARM") ?? "300");
  const methods: [string, unknown][] = [
    ["Version", {}],
    ["ContainerStatus", { container_id: cid }],
    ["ListContainers", {}],
    ["ListPodSandbox", {}],
  ];
  const t: Record<string, number[]> = {};
  const gcEvery = Number(Deno.env.get("PROBE_GC_EVERY") ?? "0");
  const fresh = Deno.env.get("PROBE_FRESH") === "1";
  const hex = (i: number, ch: string) => (ch + i.toString(16)).padStart(64, ch).slice(-64);
  for (let round = 0; round < cold + warm; round++) {
    if (gcEvery > 0 && round % gcEvery === 0) await c.call("Status", {});
    if (fresh) {
      await c.call("UpdateRuntimeConfig", {});
      const container_id = hex(0x100000 + round, "d");
      await c.call("StartContainer", { container_id });
      methods[1][1] = { container_id };
    }
    for (const [m, req] of methods) {
      const t0 = performance.now();
      await c.call(m, req);
      const ms = performance.now() - t0;
      (t[`${m} ${round < cold ? "cold" : "warm"}`] ??= []).push(ms);
    }
  }
  c.close();
  child.kill("SIGTERM");
  await child.status;
  const inner = JSON.parse(Deno.readTextFileSync(`${dir}/inner.json`)) as Record<string, number[]>;
  const f = (x: number) => x.toFixed(3);
  for (const [k, xs] of Object.entries(t)) {
    const s = stat(xs);
    console.log(`${k.padEnd(24)} client p50 ${f(s.median)} p95 ${f(s.p95)} ms`);
  }
  for (const [k, xs] of Object.entries(inner)) {
    const s = stat(xs.slice(cold));
    const c0 = stat(xs.slice(0, cold));
    console.log(
      `${k.padEnd(24)} handler cold p50 ${f(c0.median)}  warm p50 ${f(s.median)} p95 ${
        f(s.p95)
      } ms`,
    );
  }
  console.log(
    `server RSS at end ${(Number(Deno.readTextFileSync(`${dir}/rss`)) / 2 ** 20).toFixed(1)} MB`,
  );
  Deno.removeSync(dir, { recursive: true });
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--serve");
  if (i >= 0) await serve(Deno.args[i + 1], Number(Deno.args[i + 2]));
  else await client();
}
