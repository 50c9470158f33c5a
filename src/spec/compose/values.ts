/** Compose's value syntaxes: project names, durations, byte sizes, signals, sysctls, ulimits, and the list-or-map shapes. */
import { QuantityError } from "../quantity.ts";
import type { RawService } from "./schema.ts";
import type { DependencyCondition } from "./types.ts";

/** `my_App.1` → `my_app1`: the compose project-name rule `[a-z0-9][a-z0-9_-]*`. */
export function normalizeProjectName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_-]/g, "").replace(/^[_-]+/, "");
}

/** Parses `1m30s`, `10s`, `500ms`, `2h`, or a number of seconds. */
export function parseDuration(v: string | number): number {
  if (typeof v === "number") return v * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)/g;
  let total = 0;
  let matched = "";
  for (const m of v.matchAll(re)) {
    const n = Number(m[1]);
    total += n * { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, ns: 0.000001 }[m[2] as "h"];
    matched += m[0];
  }
  if (matched !== v || v === "") {
    throw new QuantityError(
      `duration ${JSON.stringify(v)} must look like "1m30s", "10s" or "500ms"`,
    );
  }
  return total;
}

/** Docker byte sizes: `512m`, `1g`, `1024`, `1.5GB` → a Kubernetes quantity string. */
export function dockerBytes(v: string | number): string {
  if (typeof v === "number") return String(v);
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(v.trim());
  if (!m) {
    throw new QuantityError(
      `size ${JSON.stringify(v)} must look like "512m", "1g" or a number of bytes`,
    );
  }
  const unit =
    { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as "k"];
  return String(Math.ceil(Number(m[1]) * unit));
}

export function cpusQuantity(v: string | number): string {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new QuantityError(`cpus ${JSON.stringify(v)} must be a non-negative number`);
  }
  return `${Math.round(n * 1000)}m`;
}

/** Names of networks, volumes, configs and secrets (compose-spec, first character alphanumeric). */
export const COMPOSE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** compose ulimit names → RLIMIT_* (setrlimit(2)). */
export const ULIMITS: Record<string, string> = {
  core: "RLIMIT_CORE",
  cpu: "RLIMIT_CPU",
  data: "RLIMIT_DATA",
  fsize: "RLIMIT_FSIZE",
  locks: "RLIMIT_LOCKS",
  memlock: "RLIMIT_MEMLOCK",
  msgqueue: "RLIMIT_MSGQUEUE",
  nice: "RLIMIT_NICE",
  nofile: "RLIMIT_NOFILE",
  nproc: "RLIMIT_NPROC",
  rss: "RLIMIT_RSS",
  rtprio: "RLIMIT_RTPRIO",
  rttime: "RLIMIT_RTTIME",
  sigpending: "RLIMIT_SIGPENDING",
  stack: "RLIMIT_STACK",
  as: "RLIMIT_AS",
}; // deno-fmt-ignore

/** "int" → "SIGINT", "SIGUSR1" stays, numbers stay. */
export function signalName(s: string): string {
  const up = s.toUpperCase();
  return /^\d+$/.test(up) || up.startsWith("SIG") ? up : `SIG${up}`;
}

/**
 * Sysctls a container may set: those the kernel keeps per namespace
 * (docker's and the kubelet's "safe" set); net.* not with the host's network.
 */
export function sysctlAllowed(name: string, hostNetwork: boolean): boolean {
  if (name.startsWith("net.")) return !hostNetwork;
  return /^(kernel\.(shm_rmid_forced|shmmax|shmall|shmmni|msgmax|msgmnb|msgmni|sem)|fs\.mqueue\.[a-z_]+)$/
    .test(name);
}

export const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

export function envMap(v: RawService["environment"]): Record<string, string | null> {
  if (!v) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((kv) => {
      const i = kv.indexOf("=");
      return i < 0 ? [kv, null] : [kv.slice(0, i), kv.slice(i + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null ? null : String(x)]));
}

export function networksMap(
  v: RawService["networks"],
): Record<string, { aliases?: string[] } | null> {
  if (!v) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((n) => [n, null]));
  return v;
}

export function dependsMap(
  v: RawService["depends_on"],
): Record<string, { condition?: DependencyCondition; required?: boolean; restart?: boolean }> {
  if (!v) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((n) => [n, { condition: "service_started" as const }]));
  }
  return v;
}
