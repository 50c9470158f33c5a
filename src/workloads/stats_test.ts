import assert from "node:assert/strict";
import {
  applyTemplate,
  bytesSize,
  checkTemplate,
  cpuPercent,
  humanSize,
  keptReadings,
  parseCache,
  parseNetDev,
  parseProcStat,
  previousFromCache,
  readCgroupSample,
  rowFields,
  sampleContainers,
  statsRow,
  toCache,
  withEarlier,
} from "./stats.ts";

/** Writes `files` (path → text) under a temp dir and runs `fn` with it. */
async function tree(
  files: Record<string, string>,
  fn: (root: string) => void | Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "rkl-stats-" });
  try {
    for (const [p, t] of Object.entries(files)) {
      const full = `${root}/${p}`;
      Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      Deno.writeTextFileSync(full, t);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    1234      12    0    0    0     0          0         0      648       8    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0       52       1    0    0    0     0       0          0
`;

Deno.test("readCgroupSample() reads a cgroup v2 tree: cpu.stat, memory less inactive_file, io.stat, pids, freeze", async () => {
  await tree({
    "cg/rkl/web/cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
    "cg/rkl/web/memory.current": "10485760\n",
    "cg/rkl/web/memory.stat": "anon 4194304\nfile 6291456\ninactive_file 2097152\n",
    "cg/rkl/web/memory.max": "max\n",
    "cg/rkl/web/io.stat":
      "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1000 wbytes=0 rios=1 wios=0\n",
    "cg/rkl/web/pids.current": "3\n",
    "cg/rkl/web/cgroup.procs": "10\n11\n12\n",
    "cg/rkl/web/cgroup.freeze": "1\n",
    "cg/rkl/lim/cpu.stat": "usage_usec 1\n",
    "cg/rkl/lim/memory.current": "100\n",
    "cg/rkl/lim/memory.max": "67108864\n",
  }, (root) => {
    const layout = { version: 2 as const, root: `${root}/cg` };
    const s = readCgroupSample(layout, "rkl/web")!;
    assert.deepEqual(s, {
      cpuNs: 2_500_000_000,
      memoryBytes: 10485760 - 2097152,
      memoryLimit: undefined,
      blkRead: 5096,
      blkWrite: 8192,
      pids: 3,
      frozen: true,
    });
    const l = readCgroupSample(layout, "rkl/lim")!;
    assert.equal(l.memoryLimit, 67108864);
    assert.equal(l.frozen, false);
    assert.equal(l.pids, undefined);
    assert.equal(readCgroupSample(layout, "rkl/gone"), undefined);
    assert.throws(() => readCgroupSample(layout, "../etc"), /must be relative/);
  });
});

Deno.test("readCgroupSample() reads cgroup v1 hierarchies: cpuacct, memory, blkio, pids, freezer", async () => {
  await tree({
    "cpuacct/rkl/web/cpuacct.usage": "123456789\n",
    "memory/rkl/web/memory.usage_in_bytes": "5000000\n",
    "memory/rkl/web/memory.stat": "cache 100\ntotal_inactive_file 1000000\ntotal_rss 3\n",
    "memory/rkl/web/memory.limit_in_bytes": "9223372036854771712\n",
    "blkio/rkl/web/blkio.throttle.io_service_bytes_recursive":
      "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 4608\n8:0 Total 4608\n8:16 Read 4\nTotal 4612\n",
    "pids/rkl/web/pids.current": "2\n",
    "freezer/rkl/web/freezer.state": "THAWED\n",
  }, (root) => {
    const layout = {
      version: 1 as const,
      mounts: {
        cpu: `${root}/cpu`,
        cpuacct: `${root}/cpuacct`,
        memory: `${root}/memory`,
        blkio: `${root}/blkio`,
        pids: `${root}/pids`,
        freezer: `${root}/freezer`,
      },
    };
    assert.deepEqual(readCgroupSample(layout, "rkl/web"), {
      cpuNs: 123456789,
      memoryBytes: 4_000_000,
      memoryLimit: undefined,
      blkRead: 4100,
      blkWrite: 512,
      pids: 2,
      frozen: false,
    });
  });
});

Deno.test("parseNetDev() sums every interface but lo; parseProcStat() takes 7 fields in USER_HZ and counts CPUs", () => {
  assert.deepEqual(parseNetDev(NET_DEV), { rx: 1334, tx: 700 });
  assert.deepEqual(parseNetDev(undefined), { rx: 0, tx: 0 });
  const st = parseProcStat(
    "cpu  100 0 50 800 40 5 5 0 0 0\ncpu0 50 0 25 400 20 2 3 0 0 0\ncpu1 50 0 25 400 20 3 2 0 0 0\nintr 1\n",
  );
  assert.deepEqual(st, { systemNs: 1000 * 1e7, onlineCpus: 2 });
});

Deno.test("cpuPercent() is docker's: cpu delta / system delta × online CPUs × 100, 0 without a delta", () => {
  // 0.5 s of the container's CPU over 2 s of host CPU time on 2 CPUs: 50 %.
  assert.equal(
    cpuPercent({ cpuNs: 1e9, systemNs: 10e9 }, { cpuNs: 1.5e9, systemNs: 12e9, onlineCpus: 2 }),
    50,
  );
  assert.equal(cpuPercent(undefined, { cpuNs: 1e9, systemNs: 1e9, onlineCpus: 2 }), 0);
  assert.equal(
    cpuPercent({ cpuNs: 1e9, systemNs: 10e9 }, { cpuNs: 1e9, systemNs: 12e9, onlineCpus: 2 }),
    0,
  );
});

Deno.test("statsRow() and rowFields() print as docker stats does", () => {
  const prev = {
    name: "web",
    id: "0123456789abcdef",
    systemNs: 10e9,
    onlineCpus: 2,
    cgroup: { cpuNs: 1e9 },
  };
  const cur = {
    ...prev,
    systemNs: 14e9,
    cgroup: { cpuNs: 1.1e9, memoryBytes: 1572864, blkRead: 0, blkWrite: 0, pids: 1 },
    net: { rx: 1234, tx: 648 },
  };
  const r = statsRow(prev, cur, 8_265_000_000);
  assert.deepEqual(rowFields(r), {
    Container: "0123456789ab",
    ID: "0123456789ab",
    Name: "web",
    CPUPerc: "5.00%",
    MemUsage: "1.5MiB / 7.697GiB",
    MemPerc: "0.02%",
    NetIO: "1.234kB / 648B",
    BlockIO: "0B / 0B",
    PIDs: "1",
  });
  // A limit below the host's memory is the limit shown.
  const limited = statsRow(undefined, { ...cur, cgroup: { memoryLimit: 64 << 20 } }, 8e9);
  assert.equal(rowFields(limited).MemUsage, "0B / 64MiB");
  assert.equal(humanSize(999), "999B");
  assert.equal(bytesSize(1023), "1023B");
});

Deno.test("applyTemplate() fills {{.Field}} and {{json .}}; checkTemplate() refuses unknown fields", () => {
  const f = { Name: "web", CPUPerc: "1.00%" };
  assert.equal(applyTemplate("{{.Name}}\\t{{ .CPUPerc }}", f), "web\t1.00%");
  assert.equal(applyTemplate("{{json .}}", f), JSON.stringify(f));
  checkTemplate("{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}");
  assert.throws(() => checkTemplate("{{.Nmae}}"), /no field "Nmae"/);
  assert.throws(() => checkTemplate("{{range .}}"), /only \{\{\.Field\}\}/);
});

Deno.test("sampleContainers() reads /proc/stat, meminfo and each running container's net/dev", async () => {
  await tree({
    "proc/stat": "cpu  100 0 0 100 0 0 0\ncpu0 100 0 0 100 0 0 0\n",
    "proc/meminfo": "MemTotal:        1000 kB\n",
    "proc/42/net/dev": NET_DEV,
    "cg/rkl/a/cpu.stat": "usage_usec 10\n",
  }, (root) => {
    const { samples, hostMemory } = sampleContainers([
      { name: "a", id: "a1", cgroupPath: "rkl/a", pid: 42, status: "running" },
      { name: "b", id: "b1", cgroupPath: "rkl/b", status: "exited" },
    ], { layout: { version: 2, root: `${root}/cg` }, proc: `${root}/proc` });
    assert.equal(hostMemory, 1024000);
    assert.equal(samples[0].cgroup?.cpuNs, 10_000);
    assert.deepEqual(samples[0].net, { rx: 1334, tx: 700 });
    assert.equal(samples[0].systemNs, 200 * 1e7);
    assert.equal(samples[1].cgroup, undefined);
    assert.equal(samples[1].net, undefined);
  });
});

Deno.test("previousFromCache() gives the kept reading only when 100 ms to 2 s old and covering every container with the same init", () => {
  const s = (id: string, cpuNs: number, pidStart = 7) => ({
    name: id,
    id,
    pidStart,
    systemNs: 50e9,
    onlineCpus: 2,
    cgroup: { cpuNs },
  });
  const now = [s("a", 3e9), s("b", 1e9)];
  const cache = parseCache(JSON.stringify(toCache([s("a", 2e9), s("b", 1e9)], 1000)))!;
  assert.equal(cache.at, 1000);
  const prev = previousFromCache(cache, now, 1500)!;
  assert.equal(prev.get("a")?.cgroup?.cpuNs, 2e9);
  assert.equal(prev.get("a")?.systemNs, 50e9);
  assert.equal(previousFromCache(cache, now, 1050), undefined, "too recent: all noise");
  assert.equal(previousFromCache(cache, now, 20_000), undefined, "too old");
  assert.equal(previousFromCache(cache, [...now, s("c", 1)], 1500), undefined, "c is new");
  assert.equal(previousFromCache(cache, [s("a", 3e9, 8)], 1500), undefined, "a restarted");
  assert.equal(previousFromCache(cache, [s("a", 1e9)], 1500), undefined, "counter went back");
  for (const bad of ["", "[]", "null", '{"at":-1,"systemNs":0,"containers":{}}', '{"at":1}']) {
    assert.equal(parseCache(bad), undefined, bad);
  }
  assert.deepEqual(
    parseCache('{"at":1,"systemNs":2,"containers":{"x":{"cpuNs":"9"},"y":{"cpuNs":3}}}'),
    { at: 1, systemNs: 2, containers: { y: { cpuNs: 3, pidStart: undefined } } },
  );
});

Deno.test("withEarlier() keeps up to 8 readings at most 2 s older, newest first, and parseCache() reads them back", () => {
  const r = (at: number) => ({ at, systemNs: at, containers: { a: { cpuNs: at } } });
  let kept = parseCache(JSON.stringify(withEarlier(r(1000), undefined)));
  for (const at of [1040, 1080, 1120]) kept = parseCache(JSON.stringify(withEarlier(r(at), kept)));
  assert.deepEqual(keptReadings(kept).map((x) => x.at), [1120, 1080, 1040, 1000]);
  // Back to back 40 ms apart: the newest is too recent, one of the earlier ones is old enough.
  const now = [{ name: "a", id: "a", systemNs: 2e9, onlineCpus: 2, cgroup: { cpuNs: 1200 } }];
  assert.equal(previousFromCache(keptReadings(kept)[0], now, 1160), undefined);
  assert.ok(keptReadings(kept).some((x) => previousFromCache(x, now, 1160)));
  const old = withEarlier(r(5000), kept);
  assert.equal(old.earlier, undefined, "older than 2 s: dropped");
  let many: ReturnType<typeof parseCache> = undefined;
  for (let at = 0; at < 20; at++) many = withEarlier(r(at), many);
  assert.equal(keptReadings(many).length, 9);
});
