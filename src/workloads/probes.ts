/**
 * Kubernetes probes (the daemon's static pods) and the handlers lifecycle
 * hooks share with them. The state machine (when a probe is due, how
 * results count against the thresholds) is pure; running a probe is the
 * only I/O: `exec` through the core's exec path (exec.ts), `httpGet`,
 * `tcpSocket` and `grpc` to the pod's IP from the host.
 */
import type { ProbeSpec } from "../spec/schema.ts";
import { type ExecResult, execSync, type ExecTarget } from "./exec.ts";
import type { Host } from "./host.ts";

export type ProbeKind = "startup" | "liveness" | "readiness";

export interface ProbeState {
  /** When the probe last ran (ms), 0 for never. */
  lastAt: number;
  failures: number;
  successes: number;
  /** The probe's current verdict. Readiness starts false, the others true. */
  ok: boolean;
}

export function initialState(kind: ProbeKind): ProbeState {
  return { lastAt: 0, failures: 0, successes: 0, ok: kind !== "readiness" };
}

/** Due when the initial delay since the container started has passed and a period since the last run. */
export function probeDue(p: ProbeSpec, st: ProbeState, startedAt: number, now: number): boolean {
  if (now < startedAt + (p.initialDelaySeconds ?? 0) * 1000) return false;
  return st.lastAt === 0 || now >= st.lastAt + (p.periodSeconds ?? 10) * 1000;
}

/** Folds one result into the state; `changed` says whether the verdict flipped. */
export function recordResult(
  p: ProbeSpec,
  st: ProbeState,
  passed: boolean,
  now: number,
): { state: ProbeState; changed: boolean } {
  const next = { ...st, lastAt: now };
  if (passed) {
    next.successes = st.successes + 1;
    next.failures = 0;
    if (!st.ok && next.successes >= (p.successThreshold ?? 1)) next.ok = true;
  } else {
    next.failures = st.failures + 1;
    next.successes = 0;
    if (st.ok && next.failures >= (p.failureThreshold ?? 3)) next.ok = false;
    // Readiness starts not-ok: a failure keeps it so without a flip.
  }
  return { state: next, changed: next.ok !== st.ok };
}

/** The port number of a probe (a named port is looked up among the container's ports). */
export function probePort(
  port: number | string,
  ports: { name?: string; containerPort: number }[],
): number | undefined {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  return ports.find((p) => p.name === port)?.containerPort;
}

export interface ProbeTarget {
  ip: string;
  ports: { name?: string; containerPort: number }[];
  exec(argv: string[], timeoutMs: number): Promise<number>;
}

/**
 * A probe's or hook's target: container `c`, whose exec handlers run
 * through execSync; `seen` gets each exec's whole result.
 */
export function containerTarget(
  host: Host,
  c: ExecTarget,
  o: {
    ip: string;
    ports: { name?: string; containerPort: number }[];
    seen?: (r: ExecResult) => void;
  },
): ProbeTarget {
  return {
    ip: o.ip,
    ports: o.ports,
    exec: async (argv, timeoutMs) => {
      const r = await execSync(host, { container: c, argv, timeoutMs });
      o.seen?.(r);
      return r.code;
    },
  };
}

/** Runs one probe: true when it passed. */
export function runProbe(p: ProbeSpec, t: ProbeTarget): Promise<boolean> {
  return runAction(p, t, (p.timeoutSeconds ?? 1) * 1000);
}

/** A probe's or a lifecycle hook's handler. */
export interface Action {
  exec?: { command: string[] };
  httpGet?: NonNullable<ProbeSpec["httpGet"]>;
  tcpSocket?: NonNullable<ProbeSpec["tcpSocket"]>;
  grpc?: { port: number; service?: string };
}

/** Runs one handler against the container: true when it passed. */
export async function runAction(a: Action, t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  if (a.exec) return (await t.exec(a.exec.command, timeoutMs)) === 0;
  if (a.grpc) {
    // node:http2 costs every command that loads this module ~10 ms: loaded when a probe needs it.
    const { grpcHealthCheck } = await import("../net/grpc_health.ts");
    return await grpcHealthCheck(t.ip, a.grpc.port, a.grpc.service ?? "", timeoutMs);
  }
  const port = probePort((a.httpGet ?? a.tcpSocket)!.port, t.ports);
  if (port === undefined) return false;
  const host = (a.httpGet ?? a.tcpSocket)!.host ?? t.ip;
  if (a.tcpSocket) {
    try {
      const conn = await withTimeout(Deno.connect({ hostname: host, port }), timeoutMs);
      conn.close();
      return true;
    } catch {
      return false;
    }
  }
  const h = a.httpGet!;
  try {
    const res = await fetch(
      `${(h.scheme ?? "HTTP").toLowerCase()}://${host}:${port}${h.path ?? "/"}`,
      {
        headers: Object.fromEntries((h.httpHeaders ?? []).map((x) => [x.name, x.value])),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "manual",
      },
    );
    await res.body?.cancel();
    return res.status >= 200 && res.status < 400; // the kubelet's rule
  } catch {
    return false;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => timer = setTimeout(() => reject(new Error("timeout")), ms)),
  ]);
}
