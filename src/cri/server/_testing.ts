/**
 * A Host for the CRI server's unit tests: records in a MemoryStore, cgroups
 * that record what is written and answer usage from a table, a runtime whose
 * exec answers what a test sets, and state dirs under a temp dir. Only what
 * the handlers under test reach is there; the rest throws.
 */
import type { Host } from "../../workloads/host.ts";
import type { ContainerRecord } from "../../workloads/container.ts";
import type { PodRecord } from "../../workloads/pod.ts";
import type { CgroupLimits, CgroupUsage } from "../../sys/cgroups/mod.ts";
import { MemoryStore } from "../../store/store.ts";
import {
  containerSource,
  type CriContainerInfo,
  type CriMount,
  type CriSandboxInfo,
  sandboxSource,
} from "../metadata.ts";

export const never = { cancelled: () => false };

export interface TestHost {
  host: Host;
  store: MemoryStore;
  root: string;
  /** cgroups.apply calls, in order. */
  applied: { rel: string; limits: CgroupLimits }[];
  /** What cgroups.usage answers, by cgroup path. */
  usage: Map<string, CgroupUsage>;
  /** PIDs by cgroup path. */
  pids: Map<string, number[]>;
  /** execCapture calls, and what the next answers. */
  execs: { id: string; args: string[]; timeoutMs: number }[];
  execResult: { code: number; stdout: string; stderr: string; timedOut: boolean };
  /** What the runtime's `state` answers, by container id (none: the runtime knows no such one). */
  states: Map<string, "created" | "running" | "stopped">;
  cleanup(): void;
}

export function testHost(): TestHost {
  const root = Deno.makeTempDirSync({ prefix: "rkl-cri-test-" });
  const store = new MemoryStore();
  const t: TestHost = {
    host: undefined as unknown as Host,
    store,
    root,
    applied: [],
    usage: new Map(),
    pids: new Map(),
    execs: [],
    execResult: { code: 0, stdout: "", stderr: "", timedOut: false },
    states: new Map(),
    cleanup: () => Deno.removeSync(root, { recursive: true }),
  };
  const runtime = {
    execCapture: (id: string, proc: { args: string[] }, o: { timeoutMs: number }) => {
      t.execs.push({ id, args: proc.args, timeoutMs: o.timeoutMs });
      return Promise.resolve(t.execResult);
    },
    state: (id: string) => {
      const status = t.states.get(id);
      return Promise.resolve(status ? { id, status, pid: 0 } : undefined);
    },
  };
  t.host = {
    store,
    paths: {
      root: `${root}/root`,
      runRoot: `${root}/run`,
      logDir: `${root}/logs`,
      cniConfDir: `${root}/cni`,
    },
    cgroupParent: "rkl",
    cgroups: {
      version: 1,
      apply: (rel: string, limits: CgroupLimits) => t.applied.push({ rel, limits }),
      usage: (rel: string) => t.usage.get(rel),
      pids: (rel: string) => t.pids.get(rel) ?? [],
    },
    runtimeFor: () => runtime,
    now: () => new Date(),
    sleep: () => Promise.resolve(),
    warn: () => {},
  } as unknown as Host;
  return t;
}

/**
 * A CRI sandbox record named `id`, ready unless `ready: false`; `legacy`
 * writes the CRI's metadata as an rkl from before record sources did (`cri`).
 */
export function criSandbox(
  id: string,
  over: Partial<PodRecord> = {},
  options: { ready?: boolean; legacy?: boolean } = {},
): PodRecord {
  const info: CriSandboxInfo = {
    name: `pod-${id.slice(0, 4)}`,
    uid: `uid-${id.slice(0, 4)}`,
    namespace: "default",
    attempt: 0,
    logDirectory: "/var/log/pods/x",
    runtimeHandler: "",
    ready: options.ready ?? true,
  };
  return {
    schemaVersion: 1,
    kind: "pod",
    name: id,
    specFile: "RunPodSandbox",
    namespace: "default",
    labels: { app: "web" },
    annotations: {},
    createdAt: "2026-01-02T03:04:05.000Z",
    created: true,
    restartPolicy: "Never",
    hostNetwork: false,
    shareProcessNamespace: false,
    hostname: "web",
    terminationGracePeriodSeconds: 0,
    runtime: { name: "youki", binary: "/bin/false", root: "/run/x" },
    cgroupPath: `rkl/pod-${id}`,
    limits: {},
    initContainers: [],
    containers: [],
    dirs: { dir: `/x/pods/${id}`, etc: `/x/pods/${id}/etc`, volumes: `/x/pods/${id}/volumes` },
    emptyDirs: {},
    resources: {},
    ...(options.legacy ? { cri: { ...info } } : { source: sandboxSource(info) }),
    ...over,
  } as PodRecord;
}

/**
 * A CRI container record `id` in sandbox `sandboxId`, its state dirs under
 * the test's root. The fake runtime answers "running" and "created" ones
 * with that state, so that a refresh keeps them as they are.
 */
export function criContainer(
  t: TestHost,
  id: string,
  options: {
    sandboxId: string;
    status: ContainerRecord["status"];
    name?: string;
    labels?: Record<string, string>;
    mounts?: CriMount[];
    legacy?: boolean;
  },
  over: Partial<ContainerRecord> = {},
): ContainerRecord {
  const info: CriContainerInfo = {
    sandboxId: options.sandboxId,
    name: options.name ?? `c-${id.slice(0, 4)}`,
    attempt: 0,
    labels: options.labels ?? { tier: "front" },
    annotations: { note: "x" },
    image: "busybox",
    mounts: options.mounts ?? [],
  };
  if (options.status === "running" || options.status === "created") {
    t.states.set(id, options.status);
  }
  const dir = `${t.root}/root/containers/${id}`;
  return {
    schemaVersion: 1,
    kind: "container",
    name: id,
    id,
    status: options.status,
    specFile: "CreateContainer",
    image: "sha256:img",
    imageId: "sha256:img",
    createdAt: "2026-01-02T03:04:05.000Z",
    ...(options.status === "exited" ? { exitCode: 3, finishedAt: "2026-01-02T03:05:00.000Z" } : {}),
    runtime: { name: "youki", binary: "/bin/false", root: "/run/x" },
    cgroupPath: `rkl/pod-${options.sandboxId}/${id}`,
    limits: {},
    labels: {},
    resources: {},
    dirs: {
      dir,
      bundle: dir,
      config: `${dir}/config.json`,
      rootfs: `${dir}/rootfs`,
      upper: `${dir}/upper`,
      work: `${dir}/work`,
      etc: `${dir}/etc`,
      subPaths: `${dir}/subpaths`,
      netns: `${t.root}/run/netns/c_${id}`,
      conmonDir: `${t.root}/run/conmon/${id}`,
      socketDir: `${t.root}/run/sock`,
      exitDir: `${t.root}/root/exits`,
      log: `${t.root}/logs/${id}.log`,
    },
    ...(options.legacy ? { cri: { ...info } } : { source: containerSource(info) }),
    ...over,
  } as ContainerRecord;
}

export const id64 = (c: string) => c.repeat(64);

/** The gRPC status a handler call fails with (fails the test when it succeeds). */
export async function failsWith(call: () => Promise<unknown>, code: number, msg?: RegExp) {
  try {
    await call();
  } catch (e) {
    const c = (e as { code?: unknown }).code;
    if (c !== code) {
      throw new Error(`wanted code ${code}, got ${String(c)}: ${(e as Error).message}`);
    }
    if (msg && !msg.test((e as Error).message)) {
      throw new Error(`wanted ${msg}, got ${(e as Error).message}`);
    }
    return;
  }
  throw new Error(`wanted code ${code}, but the call succeeded`);
}
