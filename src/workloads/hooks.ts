/**
 * Kubernetes lifecycle hooks. postStart runs right after the container
 * starts (a failure kills it: the start failed, as the kubelet counts it);
 * preStop runs before the stop signal, within the grace period. Handlers are
 * those of probes (exec in the container, httpGet/tcpSocket to its IP from
 * the host) plus `sleep`, which waits here, as the kubelet does.
 */
import type { LifecycleHandlerSpec, LifecycleSpec } from "../spec/schema.ts";
import { containerTarget, runAction } from "./probes.ts";
import { execSync, type ExecTarget } from "./exec.ts";
import type { ExecHook } from "../spec/container_spec.ts";
import type { Host } from "./host.ts";

/** The hooks as a record keeps them: named ports already turned into numbers. */
/** The record keeps them (container/types.ts defines the shape, so the record imports no exec code). */
export type { StoredHooks } from "./container/types.ts";
import type { StoredHooks } from "./container/types.ts";

export function storedHooks(
  l: LifecycleSpec | undefined,
  ports: { name?: string; containerPort: number }[],
  execs?: { postStart?: ExecHook[]; preStop?: ExecHook[] },
): StoredHooks | undefined {
  const ex = {
    ...(execs?.postStart?.length ? { postStartExec: execs.postStart } : {}),
    ...(execs?.preStop?.length ? { preStopExec: execs.preStop } : {}),
  };
  if (!l?.postStart && !l?.preStop) return Object.keys(ex).length ? ex : undefined;
  const fix = (h: LifecycleHandlerSpec | undefined): LifecycleHandlerSpec | undefined => {
    if (!h) return undefined;
    const a = h.httpGet ?? h.tcpSocket;
    if (!a || typeof a.port === "number" || /^\d+$/.test(a.port)) return h;
    const n = ports.find((p) => p.name === a.port)?.containerPort;
    if (n === undefined) return h; // runAction reports the port as failed
    return h.httpGet ? { ...h, httpGet: { ...h.httpGet, port: n } } : {
      ...h,
      tcpSocket: { ...h.tcpSocket!, port: n },
    };
  };
  return { postStart: fix(l.postStart), preStop: fix(l.preStop), ...ex };
}

/**
 * Runs exec hooks in order until one fails (compose runs a service's hooks
 * one after another); returns why it failed, or undefined. `timeoutMs` is
 * for all of them together.
 */
export async function runExecHooks(
  host: Host,
  c: ExecTarget,
  hooks: ExecHook[] | undefined,
  timeoutMs: number,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (const h of hooks ?? []) {
    const left = deadline - Date.now();
    if (left <= 0) return `${JSON.stringify(h.command.join(" "))} did not run: out of time`;
    const r = await execSync(host, {
      container: c,
      argv: h.command,
      env: h.env,
      cwd: h.cwd,
      user: h.user,
      privileged: h.privileged,
      timeoutMs: left,
    });
    if (r.code !== 0) {
      const last = r.output.split("\n").filter(Boolean).pop();
      return `${JSON.stringify(h.command.join(" "))} exited with code ${r.code}${
        last ? `: ${last}` : ""
      }`;
    }
  }
  return undefined;
}

type HookTarget = ExecTarget & { ip?: string };

/** Runs one hook; returns why it failed, or undefined. */
export async function runHook(
  host: Host,
  c: HookTarget,
  h: LifecycleHandlerSpec,
  timeoutMs: number,
): Promise<string | undefined> {
  if (h.sleep) {
    await host.sleep(Math.min(h.sleep.seconds * 1000, timeoutMs));
    return undefined;
  }
  let output = "";
  let code = 0;
  const ok = await runAction(
    h,
    containerTarget(host, c, {
      ip: c.ip ?? "127.0.0.1",
      ports: [],
      seen: (r) => {
        output = r.output;
        code = r.code;
      },
    }),
    timeoutMs,
  );
  if (ok) return undefined;
  if (h.exec) {
    const last = output.split("\n").filter(Boolean).pop();
    return `${JSON.stringify(h.exec.command.join(" "))} exited with code ${code}${
      last ? `: ${last}` : ""
    }`;
  }
  const a = (h.httpGet ?? h.tcpSocket)!;
  return `${h.httpGet ? `GET ${h.httpGet.path ?? "/"} on` : "connect to"} port ${a.port} failed`;
}
