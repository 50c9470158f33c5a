import assert from "node:assert/strict";
import { CgroupV1Manager } from "../../sys/cgroups/v1.ts";
import { CgroupV2Manager } from "../../sys/cgroups/v2.ts";
import type { CgroupManager } from "../../sys/cgroups/mod.ts";
import type { Host } from "../../workloads/host.ts";
import { decode, encode } from "../codec.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import {
  DESCRIPTORS,
  type MetricsEnv,
  metricsHandlers,
  parseNetDev,
  podCgroup,
  sandboxNetworkUsage,
} from "./metrics.ts";
import { cgroupDirs, readCgroupSample } from "./metrics_cgroup.ts";
import { statsHandlers } from "./stats.ts";
import { criContainer, criSandbox, id64, never, type TestHost, testHost } from "./_testing.ts";

/** Writes `files` (path → text) under `root`, making the directories. */
function tree(root: string, files: Record<string, string>) {
  for (const [p, text] of Object.entries(files)) {
    const full = `${root}/${p}`;
    Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(full, text);
  }
}

/** The metrics the node e2e suite's ContainerMetrics spec (v1.36.3) asks of every container. */
const SPEC_CONTAINER = [
  "container_blkio_device_usage_total",
  "container_cpu_system_seconds_total",
  "container_cpu_usage_seconds_total",
  "container_cpu_user_seconds_total",
  "container_file_descriptors",
  "container_fs_reads_bytes_total",
  "container_fs_reads_total",
  "container_fs_usage_bytes",
  "container_fs_writes_bytes_total",
  "container_fs_writes_total",
  "container_last_seen",
  "container_memory_cache",
  "container_memory_failcnt",
  "container_memory_failures_total",
  "container_memory_mapped_file",
  "container_memory_max_usage_bytes",
  "container_memory_rss",
  "container_memory_swap",
  "container_memory_usage_bytes",
  "container_memory_working_set_bytes",
  "container_oom_events_total",
  "container_processes",
  "container_sockets",
  "container_spec_cpu_period",
  "container_spec_cpu_shares",
  "container_spec_memory_limit_bytes",
  "container_spec_memory_reservation_limit_bytes",
  "container_spec_memory_swap_limit_bytes",
  "container_start_time_seconds",
  "container_threads",
  "container_threads_max",
  "container_ulimits_soft",
];
/** …and of every sandbox. */
const SPEC_POD = [
  "container_network_receive_bytes_total",
  "container_network_receive_errors_total",
  "container_network_receive_packets_dropped_total",
  "container_network_receive_packets_total",
  "container_network_transmit_bytes_total",
  "container_network_transmit_errors_total",
  "container_network_transmit_packets_dropped_total",
  "container_network_transmit_packets_total",
];

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    5366      41    1    2    0     0          0         0     1602      19    3    4    0     0       0          0
`;

interface Fixture {
  t: TestHost;
  env: MetricsEnv;
  pid: number;
  cleanup(): void;
}

/**
 * A test host with one running container `1` in sandbox `a`: its cgroup at
 * `cg` (the test fills its files), pid 4242 in a fake /proc (2 threads, 3
 * fds of which one a socket, 1048576 open files) in the sandbox's netns, a
 * writable layer with 7 bytes, and /sys naming 254:0 vda.
 */
function fixture(makeCgroups: (root: string) => CgroupManager): Fixture {
  const t = testHost();
  const proc = `${t.root}/proc`;
  const pid = 4242;
  tree(proc, {
    [`${pid}/status`]: "Name:\tsh\nThreads:\t2\n",
    [`${pid}/limits`]:
      "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n",
    [`${pid}/net/dev`]: NET_DEV,
  });
  // /proc's fd links, as files holding their targets (unit tests may not make links).
  tree(proc, {
    [`${pid}/fd/0`]: "/dev/null",
    [`${pid}/fd/1`]: "pipe:[77]",
    [`${pid}/fd/3`]: "socket:[99]",
  });
  // The netns file and the process's ns/net: one inode (a hard link), as the kernel shows them.
  Deno.writeTextFileSync(`${t.root}/netns`, "");
  Deno.mkdirSync(`${proc}/${pid}/ns`);
  Deno.linkSync(`${t.root}/netns`, `${proc}/${pid}/ns/net`);
  tree(`${t.root}/sys`, { "dev/block/254:0/uevent": "MAJOR=254\nMINOR=0\nDEVNAME=vda\n" });
  (t.host as { cgroups: CgroupManager }).cgroups = makeCgroups(`${t.root}/cg`);
  t.store.put("pods", criSandbox(id64("a"), { netns: `${t.root}/netns` }));
  const c = criContainer(t, id64("1"), { sandboxId: id64("a"), status: "running" });
  c.cgroupPath = "kubepods/poda/ctr1";
  c.startedAt = "2026-12-07T04:00:00.000Z";
  t.store.put("containers", c);
  Deno.mkdirSync(c.dirs.upper, { recursive: true });
  Deno.writeTextFileSync(`${c.dirs.upper}/f`, "1234567");
  return {
    t,
    pid,
    env: {
      proc,
      sys: `${t.root}/sys`,
      readLink: (p) => Deno.readTextFileSync(p),
      nowMs: () => Date.parse("2026-12-07T05:00:00.000Z"),
    },
    cleanup: () => t.cleanup(),
  };
}

interface M {
  name: string;
  metric_type: string;
  label_values: string[];
  value: { value: string };
}

async function listed(f: Fixture) {
  const res = await metricsHandlers(f.t.host, f.env).ListPodSandboxMetrics({}, never);
  // Through the wire format, as the kubelet gets it.
  const back = decode(
    "runtime.v1.ListPodSandboxMetricsResponse",
    encode("runtime.v1.ListPodSandboxMetricsResponse", res),
  ) as {
    pod_metrics: {
      pod_sandbox_id: string;
      metrics: M[];
      container_metrics: { container_id: string; metrics: M[] }[];
    }[];
  };
  assert.equal(back.pod_metrics.length, 1);
  const pod = back.pod_metrics[0];
  assert.equal(pod.pod_sandbox_id, id64("a"));
  assert.equal(pod.container_metrics.length, 1);
  assert.equal(pod.container_metrics[0].container_id, id64("1"));
  return { pod: pod.metrics, ctr: pod.container_metrics[0].metrics };
}

/** The value of `name` whose extra labels (after id, name, image) are `extra`. */
function value(ms: M[], name: string, extra: string[] = []): number | undefined {
  const hit = ms.filter((m) =>
    m.name === name && JSON.stringify(m.label_values.slice(3)) === JSON.stringify(extra)
  );
  assert.ok(hit.length <= 1, `${name} ${extra}: ${hit.length} series`);
  return hit[0] ? Number(hit[0].value.value) : undefined;
}

/** Every metric has a descriptor, as many label values as its keys, and its type. */
function checkAgainstDescriptors(ms: M[]) {
  const descs = new Map(DESCRIPTORS.map((d) => [d.name, d]));
  for (const m of ms) {
    const d = descs.get(m.name);
    assert.ok(d, `no descriptor for ${m.name}`);
    assert.equal(m.label_values.length, 3 + (d.labels?.length ?? 0), m.name);
    assert.equal(m.metric_type, d.type, m.name);
  }
}

const V2_FILES = {
  "kubepods/poda/ctr1/cgroup.procs": "4242\n",
  "kubepods/poda/ctr1/cpu.stat":
    "usage_usec 2500000\nuser_usec 1500000\nsystem_usec 1000000\nnr_periods 12\nnr_throttled 3\nthrottled_usec 2000000\n",
  "kubepods/poda/ctr1/cpu.max": "max 100000\n",
  "kubepods/poda/ctr1/cpu.weight": "1\n",
  "kubepods/poda/ctr1/memory.current": "3000000\n",
  "kubepods/poda/ctr1/memory.peak": "4000000\n",
  "kubepods/poda/ctr1/memory.stat":
    "anon 1000000\nfile 2000000\nfile_mapped 300000\ninactive_file 500000\npgfault 900\npgmajfault 7\n",
  "kubepods/poda/ctr1/memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
  "kubepods/poda/ctr1/memory.max": "79998976\n",
  "kubepods/poda/ctr1/memory.low": "0\n",
  "kubepods/poda/ctr1/memory.swap.current": "0\n",
  "kubepods/poda/ctr1/memory.swap.max": "max\n",
  "kubepods/poda/ctr1/pids.current": "2\n",
  "kubepods/poda/ctr1/pids.max": "max\n",
  "kubepods/poda/ctr1/io.stat": "254:0 rbytes=8192 wbytes=4096 rios=2 wios=1 dbytes=0 dios=0\n",
};

Deno.test("ListPodSandboxMetrics, cgroup v2: cAdvisor's names and figures from a cgroup tree, /proc and the netns", async () => {
  const f = fixture((root) => new CgroupV2Manager(root));
  try {
    tree(`${f.t.root}/cg`, V2_FILES);
    const { pod, ctr } = await listed(f);
    checkAgainstDescriptors([...pod, ...ctr]);
    const c = (n: string, extra: string[] = []) => value(ctr, n, extra);
    assert.equal(c("container_cpu_usage_seconds_total", ["total"]), 2); // 2.5 s, truncated
    assert.equal(c("container_cpu_user_seconds_total"), 1);
    assert.equal(c("container_cpu_system_seconds_total"), 1);
    assert.equal(c("container_cpu_cfs_periods_total"), 12);
    assert.equal(c("container_cpu_cfs_throttled_periods_total"), 3);
    assert.equal(c("container_cpu_cfs_throttled_seconds_total"), 2);
    assert.equal(c("container_memory_usage_bytes"), 3000000);
    assert.equal(c("container_memory_max_usage_bytes"), 4000000);
    assert.equal(c("container_memory_working_set_bytes"), 2500000);
    assert.equal(c("container_memory_rss"), 1000000);
    assert.equal(c("container_memory_cache"), 2000000);
    assert.equal(c("container_memory_mapped_file"), 300000);
    assert.equal(c("container_memory_swap"), 0);
    assert.equal(c("container_memory_failcnt"), 5);
    assert.equal(c("container_memory_failures_total", ["pgfault", "container"]), 900);
    assert.equal(c("container_memory_failures_total", ["pgmajfault", "hierarchy"]), 7);
    assert.equal(c("container_oom_events_total"), 1);
    // A besteffort container as the kubelet makes it: weight 1 is cAdvisor's 2 shares.
    assert.equal(c("container_spec_cpu_shares"), 2);
    assert.equal(c("container_spec_cpu_period"), 100000);
    assert.equal(c("container_spec_cpu_quota"), undefined); // "max": no quota, no series
    assert.equal(c("container_spec_memory_limit_bytes"), 79998976);
    assert.equal(c("container_spec_memory_reservation_limit_bytes"), 0);
    assert.equal(c("container_spec_memory_swap_limit_bytes"), 0); // "max" is none: 0
    assert.equal(c("container_threads"), 2);
    assert.equal(c("container_threads_max"), 0);
    assert.equal(c("container_processes"), 1);
    assert.equal(c("container_file_descriptors"), 3);
    assert.equal(c("container_sockets"), 1);
    assert.equal(c("container_ulimits_soft", ["max_open_files"]), 1048576);
    assert.equal(c("container_fs_reads_bytes_total", ["/dev/vda"]), 8192);
    assert.equal(c("container_fs_writes_bytes_total", ["/dev/vda"]), 4096);
    assert.equal(c("container_fs_reads_total", ["/dev/vda"]), 2);
    assert.equal(c("container_fs_writes_total", ["/dev/vda"]), 1);
    assert.equal(c("container_blkio_device_usage_total", ["/dev/vda", "254", "0", "Read"]), 8192);
    assert.equal(
      c("container_start_time_seconds"),
      Date.parse("2026-12-07T04:00:00.000Z") / 1000,
    );
    assert.equal(c("container_last_seen"), Date.parse("2026-12-07T05:00:00.000Z") / 1000);
    // The writable layer's blocks (a dir and a 7-byte file), on whatever device the temp dir is.
    const fsUse = ctr.filter((m) => m.name === "container_fs_usage_bytes");
    const up = f.t.store.get<ContainerRecord>("containers", id64("1"))!.dirs.upper;
    const used = (Deno.lstatSync(up).blocks! + Deno.lstatSync(`${up}/f`).blocks!) * 512;
    assert.deepEqual(fsUse.map((m) => m.value.value), [String(used)]);
    const label = ctr.find((m) => m.name === "container_memory_rss")!.label_values;
    assert.deepEqual(label, [id64("1"), "c-1111", "busybox"]);
    for (const n of SPEC_CONTAINER) assert.ok(ctr.some((m) => m.name === n), `missing ${n}`);

    // The sandbox: its netns's eth0, "POD" as its name; loopback left out.
    assert.deepEqual(pod[0].label_values, [id64("a"), "POD", "", "eth0"]);
    const p = (n: string) => value(pod, n, ["eth0"]);
    assert.equal(p("container_network_receive_bytes_total"), 5366);
    assert.equal(p("container_network_receive_packets_total"), 41);
    assert.equal(p("container_network_receive_errors_total"), 1);
    assert.equal(p("container_network_receive_packets_dropped_total"), 2);
    assert.equal(p("container_network_transmit_bytes_total"), 1602);
    assert.equal(p("container_network_transmit_packets_total"), 19);
    assert.equal(p("container_network_transmit_errors_total"), 3);
    assert.equal(p("container_network_transmit_packets_dropped_total"), 4);
    for (const n of SPEC_POD) assert.ok(pod.some((m) => m.name === n), `missing ${n}`);
    assert.ok(!pod.some((m) => m.label_values.includes("lo")));
  } finally {
    f.cleanup();
  }
});

Deno.test("ListPodSandboxMetrics, cgroup v1: one hierarchy per controller, blkio's throttle files, cpuacct in ns", async () => {
  const f = fixture((root) =>
    new CgroupV1Manager({
      cpu: `${root}/cpu`,
      cpuacct: `${root}/cpuacct`,
      memory: `${root}/memory`,
      pids: `${root}/pids`,
      blkio: `${root}/blkio`,
    })
  );
  try {
    const d = "kubepods/poda/ctr1";
    tree(`${f.t.root}/cg`, {
      [`cpuacct/${d}/cpuacct.usage`]: "3700000000\n",
      [`cpuacct/${d}/cpuacct.usage_user`]: "2100000000\n",
      [`cpuacct/${d}/cpuacct.usage_sys`]: "1600000000\n",
      [`cpu/${d}/cpu.stat`]: "nr_periods 4\nnr_throttled 1\nthrottled_time 3000000000\n",
      [`cpu/${d}/cpu.cfs_period_us`]: "100000\n",
      [`cpu/${d}/cpu.cfs_quota_us`]: "-1\n",
      [`cpu/${d}/cpu.shares`]: "2\n",
      [`memory/${d}/memory.usage_in_bytes`]: "5000000\n",
      [`memory/${d}/memory.max_usage_in_bytes`]: "6000000\n",
      [`memory/${d}/memory.failcnt`]: "0\n",
      [`memory/${d}/memory.limit_in_bytes`]: "79998976\n",
      [`memory/${d}/memory.soft_limit_in_bytes`]: "9223372036854771712\n",
      [`memory/${d}/memory.memsw.limit_in_bytes`]: "9223372036854771712\n",
      [`memory/${d}/memory.oom_control`]: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
      [`memory/${d}/memory.stat`]:
        "cache 10\nrss 20\npgfault 30\npgmajfault 1\ntotal_cache 1000000\ntotal_rss 2000000\ntotal_mapped_file 40000\ntotal_inactive_file 1000000\ntotal_pgfault 300\ntotal_pgmajfault 2\n",
      [`pids/${d}/cgroup.procs`]: "4242\n",
      [`pids/${d}/pids.current`]: "2\n",
      [`pids/${d}/pids.max`]: "1024\n",
      [`blkio/${d}/blkio.throttle.io_service_bytes_recursive`]:
        "254:0 Read 12288\n254:0 Write 0\n254:0 Sync 0\n254:0 Total 12288\nTotal 12288\n",
      [`blkio/${d}/blkio.throttle.io_serviced_recursive`]:
        "254:0 Read 3\n254:0 Write 0\n254:0 Total 3\nTotal 3\n",
    });
    const { ctr } = await listed(f);
    checkAgainstDescriptors(ctr);
    const c = (n: string, extra: string[] = []) => value(ctr, n, extra);
    assert.equal(c("container_cpu_usage_seconds_total", ["total"]), 3);
    assert.equal(c("container_cpu_user_seconds_total"), 2);
    assert.equal(c("container_cpu_system_seconds_total"), 1);
    assert.equal(c("container_cpu_cfs_throttled_seconds_total"), 3);
    assert.equal(c("container_spec_cpu_shares"), 2);
    assert.equal(c("container_spec_cpu_quota"), undefined); // -1: none
    assert.equal(c("container_memory_usage_bytes"), 5000000);
    assert.equal(c("container_memory_working_set_bytes"), 4000000);
    assert.equal(c("container_memory_rss"), 2000000);
    assert.equal(c("container_memory_cache"), 1000000);
    assert.equal(c("container_memory_mapped_file"), 40000);
    assert.equal(c("container_memory_failures_total", ["pgfault", "container"]), 30);
    assert.equal(c("container_memory_failures_total", ["pgfault", "hierarchy"]), 300);
    // The kernel's "no limit" (PAGE_COUNTER_MAX) is 0, as cAdvisor shows it.
    assert.equal(c("container_spec_memory_reservation_limit_bytes"), 0);
    assert.equal(c("container_spec_memory_swap_limit_bytes"), 0);
    assert.equal(c("container_spec_memory_limit_bytes"), 79998976);
    assert.equal(c("container_threads_max"), 1024);
    assert.equal(c("container_fs_reads_bytes_total", ["/dev/vda"]), 12288);
    assert.equal(c("container_fs_reads_total", ["/dev/vda"]), 3);
    assert.equal(c("container_fs_writes_total", ["/dev/vda"]), 0);
    for (const n of SPEC_CONTAINER) assert.ok(ctr.some((m) => m.name === n), `missing ${n}`);
  } finally {
    f.cleanup();
  }
});

Deno.test("ListPodSandboxMetrics: a container whose cgroup is gone, an exited one and a pid in another netns say nothing", async () => {
  const f = fixture((root) => new CgroupV2Manager(root));
  try {
    // No cgroup files at all for ctr1; an exited container 2; the pid's netns is another inode.
    f.t.store.put(
      "containers",
      criContainer(f.t, id64("2"), { sandboxId: id64("a"), status: "exited" }),
    );
    // A record that says running while the runtime knows the container no more.
    f.t.store.put(
      "containers",
      criContainer(f.t, id64("3"), { sandboxId: id64("a"), status: "running" }),
    );
    f.t.states.delete(id64("3"));
    Deno.removeSync(`${f.env.proc}/${f.pid}/ns/net`);
    Deno.writeTextFileSync(`${f.env.proc}/${f.pid}/ns/net`, "");
    const res = await metricsHandlers(f.t.host, f.env).ListPodSandboxMetrics({}, never);
    assert.equal(res.pod_metrics.length, 1);
    assert.deepEqual(res.pod_metrics[0].metrics, []);
    assert.deepEqual(
      res.pod_metrics[0].container_metrics.map((c: { container_id: string; metrics: [] }) => [
        c.container_id,
        c.metrics.length,
      ]),
      [[id64("1"), 0]],
    );
  } finally {
    f.cleanup();
  }
});

Deno.test("ListMetricDescriptors: every name once, base labels first, through the codec", async () => {
  const res = await metricsHandlers({} as Host).ListMetricDescriptors({}, never);
  const back = decode(
    "runtime.v1.ListMetricDescriptorsResponse",
    encode("runtime.v1.ListMetricDescriptorsResponse", res),
  ) as { descriptors: { name: string; help: string; label_keys: string[] }[] };
  const names = back.descriptors.map((d) => d.name);
  assert.equal(new Set(names).size, names.length);
  for (const n of [...SPEC_CONTAINER, ...SPEC_POD]) assert.ok(names.includes(n), `missing ${n}`);
  for (const d of back.descriptors) {
    assert.deepEqual(d.label_keys.slice(0, 3), ["id", "name", "image"]);
    assert.ok(d.help.length > 0);
  }
  assert.deepEqual(
    back.descriptors.find((d) => d.name === "container_memory_failures_total")!.label_keys,
    ["id", "name", "image", "failure_type", "scope"],
  );
});

Deno.test("PodSandboxStats' network: the sandbox's interfaces from a process in its netns, eth0 the default", async () => {
  const f = fixture((root) => new CgroupV2Manager(root));
  try {
    tree(`${f.t.root}/cg`, V2_FILES);
    const p = f.t.store.get<PodRecord>("pods", id64("a"))!;
    const net = sandboxNetworkUsage(f.t.host, p, 5n, f.env)!;
    assert.deepEqual(net, {
      timestamp: "5",
      default_interface: {
        name: "eth0",
        rx_bytes: { value: "5366" },
        rx_errors: { value: "1" },
        tx_bytes: { value: "1602" },
        tx_errors: { value: "3" },
      },
      interfaces: [net.default_interface],
    });
    encode("runtime.v1.NetworkUsage", net);
    // On the host's network, or with no process of its own running: none.
    assert.equal(sandboxNetworkUsage(f.t.host, { ...p, hostNetwork: true }, 5n, f.env), null);
    Deno.writeTextFileSync(`${f.t.root}/cg/kubepods/poda/ctr1/cgroup.procs`, "");
    assert.equal(sandboxNetworkUsage(f.t.host, p, 5n, f.env), null);
    // PodSandboxStats carries the field (null here: the real /proc has no such sandbox).
    const res = await statsHandlers(f.t.host).PodSandboxStats({ pod_sandbox_id: id64("a") }, never);
    assert.ok("network" in res.stats.linux);
  } finally {
    f.cleanup();
  }
});

Deno.test("parseNetDev: per-interface counters; loopback, veth and docker links left out; bad lines skipped", () => {
  const devs = parseNetDev(
    NET_DEV + "veth12ab:  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  net1: 1 2 x\n",
  );
  assert.deepEqual(devs.map((d) => d.name), ["eth0"]);
  assert.deepEqual(devs[0], {
    name: "eth0",
    rxBytes: 5366,
    rxPackets: 41,
    rxErrors: 1,
    rxDropped: 2,
    txBytes: 1602,
    txPackets: 19,
    txErrors: 3,
    txDropped: 4,
  });
});

Deno.test("readCgroupSample, v1: cpuacct.stat's ticks where cpuacct.usage_user/usage_sys are not there; a missing cgroup is undefined", () => {
  const root = Deno.makeTempDirSync({ prefix: "rkl-metrics-v1-" });
  try {
    tree(root, {
      "cpuacct/x/cpuacct.usage": "500000000\n",
      "cpuacct/x/cpuacct.stat": "user 30\nsystem 12\n",
    });
    const cg = new CgroupV1Manager({ cpuacct: `${root}/cpuacct`, memory: `${root}/memory` });
    const s = readCgroupSample(1, cgroupDirs(cg, "x")!)!;
    assert.equal(s.cpuUserNs, 300_000_000);
    assert.equal(s.cpuSystemNs, 120_000_000);
    assert.equal(s.memoryUsage, undefined); // no memory cgroup: no figure, not 0
    assert.equal(readCgroupSample(1, cgroupDirs(cg, "gone")!), undefined);
    assert.equal(readCgroupSample(2, cgroupDirs(new CgroupV2Manager(root), "gone")!), undefined);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

const PRESSURE = "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n" +
  "full avg10=0.00 avg60=0.00 avg300=0.00 total=789\n";

Deno.test("ContainerStats and PodSandboxStats carry PSI: v2's own files, a hybrid v1 host's unified mount", async () => {
  for (const version of [2, 1] as const) {
    const f = fixture((root) =>
      version === 2 ? new CgroupV2Manager(root) : new CgroupV1Manager(
        { memory: `${root}/memory` },
        [`${root}/systemd`, `${root}/unified`],
      )
    );
    try {
      const base = version === 2 ? `${f.t.root}/cg` : `${f.t.root}/cg/unified`;
      tree(`${f.t.root}/cg`, {
        "unified/cgroup.controllers": "",
        "systemd/tasks": "",
        "memory/kubepods/poda/ctr1/memory.usage_in_bytes": "1000\n",
      });
      for (const k of ["cpu", "memory", "io"]) {
        tree(base, { [`kubepods/poda/ctr1/${k}.pressure`]: PRESSURE });
      }
      // The sandbox's cgroup: cpu.pressure only, without a `full` line (kernels before 5.13).
      f.t.store.put("pods", {
        ...f.t.store.get<PodRecord>("pods", id64("a"))!,
        cgroupPath: "kubepods/poda",
      });
      tree(base, { "kubepods/poda/cpu.pressure": PRESSURE.split("\n")[0] + "\n" });
      const h = statsHandlers(f.t.host);
      const cs = (await h.ContainerStats({ container_id: id64("1") }, never)).stats;
      const want = {
        Full: { Total: "789", Avg10: 0, Avg60: 0, Avg300: 0 },
        Some: { Total: "123456", Avg10: 1.5, Avg60: 0.25, Avg300: 0 },
      };
      assert.deepEqual(cs.cpu.psi, want, `v${version}`);
      assert.deepEqual(cs.memory.psi, want);
      assert.deepEqual(cs.io.psi, want);
      const back = decode(
        "runtime.v1.ContainerStats",
        encode("runtime.v1.ContainerStats", cs),
      ) as { io: { psi: unknown } };
      assert.deepEqual(back.io.psi, want);
      const ps = (await h.PodSandboxStats({ pod_sandbox_id: id64("a") }, never)).stats;
      assert.deepEqual(ps.linux.cpu.psi, {
        Full: { Total: "0", Avg10: 0, Avg60: 0, Avg300: 0 },
        Some: want.Some,
      });
      assert.equal(ps.linux.memory.psi, null); // no file: none, not zeros
      assert.equal(ps.linux.io, null);
    } finally {
      f.cleanup();
    }
  }
});

Deno.test("PodSandboxStats reports the pod's cgroup (the kubelet's cgroup_parent), where its memory limit is", async () => {
  assert.equal(
    podCgroup(criSandbox(id64("a"), { cgroupPath: `kubepods/poda/${id64("a")}` })),
    "kubepods/poda",
  );
  // No cgroup_parent: the sandbox's own cgroup.
  assert.equal(
    podCgroup(criSandbox(id64("a"), { cgroupPath: `rkl/pod-${id64("a")}` })),
    `rkl/pod-${id64("a")}`,
  );
  assert.equal(podCgroup(criSandbox(id64("a"), { cgroupPath: id64("a") })), id64("a"));
  const t = testHost();
  try {
    t.store.put("pods", criSandbox(id64("a"), { cgroupPath: `kubepods/poda/${id64("a")}` }));
    t.usage.set(`kubepods/poda/${id64("a")}`, { memoryBytes: 500, workingSetBytes: 400 });
    t.usage.set("kubepods/poda", {
      memoryBytes: 600,
      workingSetBytes: 500,
      memoryLimit: 80_000_000,
    });
    const s =
      (await statsHandlers(t.host).PodSandboxStats({ pod_sandbox_id: id64("a") }, never)).stats;
    assert.deepEqual(s.linux.memory.usage_bytes, { value: "600" });
    assert.deepEqual(s.linux.memory.available_bytes, { value: String(80_000_000 - 500) });
  } finally {
    t.cleanup();
  }
});
