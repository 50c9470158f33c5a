/**
 * compose-spec files → a normalised project model. Each file is parsed with
 * positions, interpolated in place (so errors still point at the right
 * line), validated on its own, then merged in order (later files override
 * earlier ones, as `docker compose -f a -f b` does).
 */
import { isBundlePath } from "./paths.ts";
import { isMap, isScalar, isSeq, type Scalar, visit } from "yaml";
import { z } from "zod";
import { type SourceLocation, SpecError } from "../errors.ts";
import { interpolate, InterpolationError, parseDotEnv, shellSplit } from "./interpolate.ts";
import { dirnameOf, joinPath } from "./paths.ts";
import { parseQuantity, QuantityError } from "./quantity.ts";
import { envNameError } from "./names.ts";
import {
  formatPath,
  locate,
  parseYamlDocuments,
  type PathSegment,
  type SourceDoc,
  validate,
  type Warning,
} from "./source.ts";

const strOrList = z.union([z.string(), z.array(z.string())]);
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const duration = z.union([z.string(), z.number()]);

const portLong = z.strictObject({
  target: z.number().int().min(1).max(65535),
  published: z.union([z.string(), z.number()]).optional(),
  host_ip: z.string().optional(),
  protocol: z.enum(["tcp", "udp"]).optional(),
  mode: z.string().optional(),
  name: z.string().optional(),
  app_protocol: z.string().optional(),
});

const volumeLong = z.strictObject({
  type: z.enum(["bind", "volume", "tmpfs"]),
  source: z.string().optional(),
  target: z.string(),
  read_only: z.boolean().optional(),
  bind: z.strictObject({
    create_host_path: z.boolean().optional(),
    propagation: z.string().optional(),
  }).optional(),
  volume: z.strictObject({ nocopy: z.boolean().optional() }).optional(),
  tmpfs: z.strictObject({
    size: z.union([z.string(), z.number()]).optional(),
    mode: z.number().int().min(0).max(0o7777).optional(),
  }).optional(),
});

const fileRef = z.union([
  z.string(),
  z.strictObject({
    source: z.string(),
    target: z.string().optional(),
    uid: z.union([z.string(), z.number()]).optional(),
    gid: z.union([z.string(), z.number()]).optional(),
    mode: z.union([z.number(), z.string()]).optional(),
  }),
]);

const serviceHook = z.strictObject({
  command: strOrList,
  user: z.union([z.string(), z.number()]).optional(),
  privileged: z.boolean().optional(),
  working_dir: z.string().optional(),
  environment: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
});

const serviceSchema = z.strictObject({
  extends: z.union([
    z.string(),
    z.strictObject({ service: z.string(), file: z.string().optional() }),
  ]).optional(),
  image: z.string().optional(),
  tmpfs: strOrList.optional(),
  pull_policy: z.string().optional(),
  command: z.union([strOrList, z.null()]).optional(),
  entrypoint: z.union([strOrList, z.null()]).optional(),
  environment: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  env_file: z.union([
    z.string(),
    z.array(
      z.union([z.string(), z.strictObject({ path: z.string(), required: z.boolean().optional() })]),
    ),
  ])
    .optional(),
  ports: z.array(z.union([z.string(), z.number(), portLong])).optional(),
  expose: z.array(z.union([z.string(), z.number()])).optional(),
  volumes: z.array(z.union([z.string(), volumeLong])).optional(),
  networks: z.union([
    z.array(z.string()),
    z.record(
      z.string(),
      z.union([
        z.null(),
        z.strictObject({
          aliases: z.array(z.string()).optional(),
          ipv4_address: z.string().optional(),
          ipv6_address: z.string().optional(),
          mac_address: z.string().optional(),
        }),
      ]),
    ),
  ]).optional(),
  depends_on: z.union([
    z.array(z.string()),
    z.record(
      z.string(),
      z.strictObject({
        condition: z.enum(["service_started", "service_healthy", "service_completed_successfully"])
          .optional(),
        restart: z.boolean().optional(),
        required: z.boolean().optional(),
      }),
    ),
  ]).optional(),
  healthcheck: z.strictObject({
    test: strOrList.optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    retries: z.number().int().min(0).optional(),
    start_period: duration.optional(),
    start_interval: duration.optional(),
    disable: z.boolean().optional(),
  }).optional(),
  restart: z.string().regex(
    /^(no|always|unless-stopped|on-failure(:\d+)?)$/,
    'must be "no", "always", "on-failure" or "unless-stopped"',
  )
    .optional(),
  container_name: z.string().optional(),
  hostname: z.string().optional(),
  working_dir: z.string().optional(),
  user: z.union([z.string(), z.number()]).optional(),
  cpus: z.union([z.number(), z.string()]).optional(),
  mem_limit: z.union([z.number(), z.string()]).optional(),
  deploy: z.strictObject({
    // One host is one node: `global` runs one replica.
    mode: z.enum(["replicated", "global"]).optional(),
    replicas: z.number().int().min(0).optional(),
    resources: z.strictObject({
      limits: z.strictObject({
        cpus: z.union([z.number(), z.string()]).optional(),
        memory: z.union([z.number(), z.string()]).optional(),
        pids: z.number().optional(),
      })
        .optional(),
      reservations: z.strictObject({
        cpus: z.union([z.number(), z.string()]).optional(),
        memory: z.union([z.number(), z.string()]).optional(),
      })
        .optional(),
    }).optional(),
    restart_policy: z.strictObject({
      condition: z.string().optional(),
      max_attempts: z.number().optional(),
    }).optional(),
  }).optional(),
  scale: z.number().int().min(0).optional(),
  configs: z.array(fileRef).optional(),
  secrets: z.array(fileRef).optional(),
  profiles: z.array(z.string()).optional(),
  labels: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  privileged: z.boolean().optional(),
  cap_add: z.array(z.string()).optional(),
  cap_drop: z.array(z.string()).optional(),
  read_only: z.boolean().optional(),
  stop_grace_period: duration.optional(),
  tty: z.boolean().optional(),
  init: z.boolean().optional(),
  post_start: z.array(serviceHook).optional(),
  pre_stop: z.array(serviceHook).optional(),
  mac_address: z.string().optional(),
  links: z.array(z.string()).optional(),
  security_opt: z.array(z.string()).optional(),
  stdin_open: z.boolean().optional(),
  network_mode: z.string().optional(),
  stop_signal: z.string().regex(/^(SIG)?[A-Z0-9+-]+$|^\d+$/i, "must be a signal such as SIGINT")
    .optional(),
  shm_size: z.union([z.number(), z.string()]).optional(),
  sysctls: z.union([z.record(z.string(), scalar), z.array(z.string())]).optional(),
  ulimits: z.record(
    z.string(),
    z.union([
      z.number().int(),
      z.strictObject({ soft: z.number().int(), hard: z.number().int() }),
    ]),
  ).optional(),
});

const projectSchema = z.strictObject({
  version: z.union([z.string(), z.number()]).optional(),
  name: z.string().optional(),
  include: z.unknown().optional(),
  services: z.record(z.string(), z.union([serviceSchema, z.null()])).optional(),
  networks: z.record(
    z.string(),
    z.union([
      z.null(),
      z.strictObject({
        driver: z.string().optional(),
        name: z.string().optional(),
        external: z.boolean().optional(),
        internal: z.boolean().optional(),
        ipam: z.strictObject({
          driver: z.string().optional(),
          config: z.array(z.strictObject({ subnet: z.string().optional() })).optional(),
        })
          .optional(),
        driver_opts: z.record(z.string(), z.string()).optional(),
        labels: z.union([z.record(z.string(), z.string()), z.array(z.string())]).optional(),
      }),
    ]),
  ).optional(),
  volumes: z.record(
    z.string(),
    z.union([
      z.null(),
      z.strictObject({
        driver: z.string().optional(),
        driver_opts: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
        name: z.string().optional(),
        external: z.boolean().optional(),
      }),
    ]),
  ).optional(),
  configs: z.record(
    z.string(),
    z.strictObject({
      file: z.string().optional(),
      content: z.string().optional(),
      environment: z.string().optional(),
      external: z.boolean().optional(),
    }),
  )
    .optional(),
  secrets: z.record(
    z.string(),
    z.strictObject({
      file: z.string().optional(),
      environment: z.string().optional(),
      external: z.boolean().optional(),
    }),
  )
    .optional(),
});

type RawProject = z.output<typeof projectSchema>;
type RawService = z.output<typeof serviceSchema>;

export interface ComposePort {
  hostIP?: string;
  hostPort: number;
  /** `"6005-6015:80"`: the first port of hostPort..hostPortEnd free when the container is made. */
  hostPortEnd?: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

export interface ComposeMount {
  kind: "bind" | "volume" | "anonymous" | "config" | "secret" | "tmpfs";
  /** Absolute host path (bind, config, secret file) or volume name. */
  source: string;
  target: string;
  readOnly: boolean;
  /** A bind source that is missing is made as a directory (short syntax, `create_host_path`). */
  createHostPath?: boolean;
  /** Where the mount is written, for errors found when the service is made. */
  loc?: SourceLocation;
  /** tmpfs mount options (size=BYTES, mode=OCTAL, uid=, gid=, and flags such as noexec). */
  options?: string[];
  /** A config's or secret's own copy: owner and mode (`uid`, `gid`, `mode`). */
  owner?: { uid: number; gid: number; mode: number };
}

export interface ComposeHealthcheck {
  /** argv run in the container. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  /** How often to check during the start period (compose `start_interval`, default 5 s). */
  startIntervalMs: number;
}

export type DependencyCondition =
  | "service_started"
  | "service_healthy"
  | "service_completed_successfully";

export interface ComposeService {
  name: string;
  /** A bundle directory (absolute) or an image reference. */
  image: string;
  pullPolicy?: "Always" | "IfNotPresent" | "Never";
  entrypoint?: string[];
  command?: string[];
  environment: Record<string, string>;
  ports: ComposePort[];
  mounts: ComposeMount[];
  /** `ipv4Address`, `macAddress`: fixed ones (CNI host-local `ips`, bridge `mac`). */
  networks: { name: string; aliases: string[]; ipv4Address?: string; macAddress?: string }[];
  dependsOn: { service: string; condition: DependencyCondition; required: boolean }[];
  healthcheck?: ComposeHealthcheck;
  restart: "no" | "always" | "on-failure" | "unless-stopped";
  containerName?: string;
  hostname?: string;
  workingDir?: string;
  /** Numbers, or names that the bundle's /etc/passwd and /etc/group resolve at create. */
  user?: { uid?: number; gid?: number; name?: string; group?: string; loc?: SourceLocation };
  /** Kubernetes quantities, for the container spec. */
  cpus?: string;
  memory?: string;
  replicas: number;
  labels: Record<string, string>;
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  readOnly: boolean;
  stopGraceSec: number;
  tty: boolean;
  /** `links`: SERVICE → extra names it resolves by in this service's /etc/hosts. */
  links: { service: string; alias: string }[];
  /** `security_opt` that rkl applies (docker's `--security-opt`). */
  securityOpt: ComposeSecurityOpt;
  /** `post_start`, `pre_stop`: a command run in the container after start, before the stop signal. */
  hooks: { postStart?: string[]; preStop?: string[] };
  /** `init: true`: catatonit runs as PID 1 in front of the process (docker's `--init`). */
  init: boolean;
  /**
   * `network_mode`: the host's network namespace, loopback only, or another
   * service's (its first replica's) or rkl container's, named by `networkTarget`.
   */
  networkMode?: "host" | "none" | "service" | "container";
  networkTarget?: string;
  /** `stop_signal`, as SIGNAME. */
  stopSignal?: string;
  /** `shm_size` in bytes. */
  shmSize?: number;
  sysctls: Record<string, string>;
  /** `ulimits`, as RLIMIT_* with soft and hard values. */
  ulimits: { type: string; soft: number; hard: number }[];
}

export interface ComposeSecurityOpt {
  /** `no-new-privileges[:true]`. */
  noNewPrivileges?: boolean;
  /** `seccomp=unconfined`, `seccomp=builtin`, or `seccomp=FILE` (absolute, a Localhost profile). */
  seccomp?: { type: "Unconfined" | "RuntimeDefault" } | { type: "Localhost"; file: string };
  /** `systempaths=unconfined`: no masked or read-only /proc and /sys paths. */
  systemPathsUnconfined?: boolean;
}

/**
 * docker's `--security-opt` values: `KEY=VALUE` or `KEY:VALUE`. rkl applies
 * no SELinux labels and no AppArmor profiles, so `label=disable` and
 * `apparmor=unconfined` describe what it does; any other label or profile
 * is refused, as is every other key.
 */
function securityOpts(
  L: Located,
  svc: string,
  raw: string[] | undefined,
  dir: string,
): ComposeSecurityOpt {
  const out: ComposeSecurityOpt = {};
  (raw ?? []).forEach((opt, i) => {
    const where: PathSegment[] = ["services", svc, "security_opt", i];
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(opt);
    const [key, value] = m ? [m[1], m[2]] : ["", undefined];
    if (key === "no-new-privileges" && (value === undefined || /^(true|false)$/.test(value))) {
      out.noNewPrivileges = value !== "false";
    } else if (key === "seccomp" && value) {
      out.seccomp = value === "unconfined"
        ? { type: "Unconfined" }
        : value === "builtin"
        ? { type: "RuntimeDefault" }
        : { type: "Localhost", file: joinPath(dir, value) };
    } else if (key === "systempaths" && value === "unconfined") {
      out.systemPathsUnconfined = true;
    } else if (key === "label" && (value === "disable" || value === "disabled")) {
      // rkl sets no SELinux labels: nothing to disable.
    } else if (key === "apparmor" && value === "unconfined") {
      // rkl loads no AppArmor profile: containers are unconfined already.
    } else if (key === "label" || key === "apparmor") {
      throw L.error(
        where,
        `security_opt ${JSON.stringify(opt)}: rkl applies no ${
          key === "label" ? "SELinux labels" : "AppArmor profiles"
        }; remove it (or use ${key}=${key === "label" ? "disable" : "unconfined"})`,
      );
    } else {
      throw L.error(
        where,
        `security_opt ${
          JSON.stringify(opt)
        } is not supported: use no-new-privileges, seccomp=unconfined|builtin|FILE, systempaths=unconfined, label=disable or apparmor=unconfined`,
      );
    }
  });
  return out;
}

export interface ComposeProject {
  name: string;
  /** Directory relative paths resolve against (the first file's). */
  dir: string;
  files: string[];
  /** Enabled services, in dependency order (dependencies first). */
  services: ComposeService[];
  networks: { name: string; external: boolean; subnet?: string }[];
  /** `device`: the local driver's bind (`driver_opts` type none, o bind): this host directory. */
  volumes: { name: string; external: boolean; device?: string }[];
  configs: { name: string; file?: string; content?: string }[];
  secrets: { name: string; file?: string; content?: string }[];
}

export interface ComposeFile {
  file: string;
  text: string;
  /** Directory the file's `extends.file` paths resolve against (absolute); default `dir`. */
  dir?: string;
}

export interface LoadComposeOptions {
  /** Variables for interpolation (the process environment over `.env`). */
  env: Record<string, string | undefined>;
  /** `-p`, else the top-level `name`, else the directory name. */
  projectName?: string;
  /** Directory of the first file, absolute. */
  dir: string;
  profiles?: string[];
  /**
   * Reads an `env_file` (absolute path); undefined when it does not exist. It
   * throws when the file cannot be read (not a regular file, too big): the
   * error becomes a SpecError at the `env_file` line.
   */
  readFile?: (path: string) => string | undefined;
}

/** Paths (from the document root) of the values a file tags `!reset` or `!override`. */
interface Tags {
  reset: PathSegment[][];
  override: PathSegment[][];
}

/** One compose file parsed, interpolated, its tags collected and its schema checked. */
interface Prepared {
  src: SourceDoc;
  raw: RawProject;
  tags: Tags;
  dir: string;
}

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

function cpusQuantity(v: string | number): string {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new QuantityError(`cpus ${JSON.stringify(v)} must be a non-negative number`);
  }
  return `${Math.round(n * 1000)}m`;
}

/** Where a compose path is, searching the files last to first (the one that set it last wins). */
interface Located {
  srcs: SourceDoc[];
  at(path: readonly PathSegment[]): SourceLocation & { path: string };
  error(path: readonly PathSegment[], detail: string): SpecError;
}

function located(srcs: SourceDoc[]): Located {
  const at = (path: readonly PathSegment[]) => {
    for (let i = srcs.length - 1; i >= 0; i--) {
      if (srcs[i].doc.hasIn(path as PathSegment[])) {
        return { file: srcs[i].file, ...locate(srcs[i], path), path: formatPath(path) };
      }
    }
    const last = srcs[srcs.length - 1];
    return { file: last.file, ...locate(last, path), path: formatPath(path) };
  };
  return { srcs, at, error: (path, detail) => new SpecError(at(path), detail) };
}

/** Interpolates every string scalar of the document in place, keeping node positions. */
/** Interpolates every value in place; returns a warning for each unset variable (once each). */
function interpolateDoc(src: SourceDoc, env: Record<string, string | undefined>): Warning[] {
  const warned = new Set<string>();
  const warnings: Warning[] = [];
  visit(src.doc, {
    Scalar(key, node: Scalar) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("$")) return;
      const unset = (name: string) => {
        if (warned.has(name)) return;
        warned.add(name);
        const pos = node.range ? src.lines.linePos(node.range[0]) : undefined;
        warnings.push({
          file: src.file,
          line: pos?.line,
          column: pos?.col,
          path: "",
          message: `variable ${name} is not set, using an empty string`,
        });
      };
      try {
        node.value = interpolate(node.value, env, unset);
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        const pos = node.range ? src.lines.linePos(node.range[0]) : undefined;
        throw new SpecError({ file: src.file, line: pos?.line, column: pos?.col }, e.message);
      }
    },
  });
  src.value = src.doc.toJS({ maxAliasCount: 100 });
  return warnings;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function envMap(v: RawService["environment"]): Record<string, string | null> {
  if (!v) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((kv) => {
      const i = kv.indexOf("=");
      return i < 0 ? [kv, null] : [kv.slice(0, i), kv.slice(i + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null ? null : String(x)]));
}

function networksMap(v: RawService["networks"]): Record<string, { aliases?: string[] } | null> {
  if (!v) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((n) => [n, null]));
  return v;
}

function dependsMap(
  v: RawService["depends_on"],
): Record<string, { condition?: DependencyCondition; required?: boolean }> {
  if (!v) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((n) => [n, { condition: "service_started" as const }]));
  }
  return v;
}

/**
 * Collects the `!reset` and `!override` tags of a document (compose's merge
 * tags) and drops the `!reset` values from its plain value: the value given
 * there is ignored, the key goes back to its default.
 */
function collectTags(src: SourceDoc): Tags {
  const tags: Tags = { reset: [], override: [] };
  const walk = (node: unknown, path: PathSegment[]) => {
    if (!node || typeof node !== "object") return;
    const tag = (node as { tag?: string }).tag;
    if (tag === "!reset") {
      tags.reset.push(path);
      return;
    }
    if (tag === "!override") tags.override.push(path);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key)) walk(pair.value, [...path, String(pair.key.value)]);
      }
    } else if (isSeq(node)) node.items.forEach((it, i) => walk(it, [...path, i]));
  };
  walk(src.doc.contents, []);
  // Last first, so that list indexes stay right while elements are removed.
  for (const p of [...tags.reset].reverse()) deleteIn(src.value, p);
  return tags;
}

/** Removes the value at `path` (a map key or a list element), if there is one. */
function deleteIn(root: unknown, path: readonly PathSegment[]): void {
  if (path.length === 0) return;
  let node = root;
  for (const seg of path.slice(0, -1)) {
    if (!node || typeof node !== "object") return;
    node = (node as Record<string, unknown>)[seg as string];
  }
  const last = path[path.length - 1];
  if (Array.isArray(node) && typeof last === "number") node.splice(last, 1);
  else if (isObj(node)) delete node[String(last)];
}

/** The tags below `prefix`, with paths relative to it. */
function tagsUnder(tags: Tags, prefix: readonly PathSegment[]): Tags {
  const under = (ps: PathSegment[][]) =>
    ps.filter((p) => p.length > prefix.length && prefix.every((x, i) => p[i] === x))
      .map((p) => p.slice(prefix.length));
  return { reset: under(tags.reset), override: under(tags.override) };
}

/** Lists merged by a unique key (compose's merge rules): a later entry replaces an earlier one. */
function portKey(p: unknown): string {
  if (isObj(p)) {
    return `${p.host_ip ?? ""}|${p.published ?? ""}|${p.target}|${p.protocol ?? "tcp"}`;
  }
  const [main, proto = "tcp"] = String(p).split("/");
  const parts = main.split(":");
  const target = parts.pop();
  const published = parts.pop() ?? "";
  return `${parts.join(":")}|${published}|${target}|${proto}`;
}

function volumeKey(x: unknown): string {
  if (isObj(x)) return String(x.target);
  const parts = String(x).split(":");
  return parts.length === 1 ? parts[0] : parts[1];
}

function fileRefKey(kind: "secrets" | "configs") {
  return (x: unknown): string => {
    const source = isObj(x) ? String(x.source) : String(x);
    const target = isObj(x) && x.target !== undefined ? String(x.target) : undefined;
    // As the mount is made: a relative target is below /run/secrets.
    if (target !== undefined) return target.startsWith("/") ? target : `/run/secrets/${target}`;
    return kind === "secrets" ? `/run/secrets/${source}` : `/${source}`;
  };
}

function tmpfsKey(x: unknown): string {
  return String(x).split(":")[0];
}

function mergeByKey(a: unknown[], b: unknown[], key: (x: unknown) => string): unknown[] {
  const later = new Set(b.map(key));
  return [...a.filter((x) => !later.has(key(x))), ...b];
}

const BY_KEY: Record<string, (x: unknown) => string> = {
  ports: portKey,
  volumes: volumeKey,
  secrets: fileRefKey("secrets"),
  configs: fileRefKey("configs"),
  tmpfs: tmpfsKey,
};

/** Keys whose list form is `KEY=VALUE` (or a bare name) and whose map form merges by key. */
const MAP_LIKE = new Set(["environment", "labels", "sysctls"]);

/** A sequence or mapping value of a service that merges by key, as a mapping. */
function normalizeKey(k: string, v: unknown): unknown {
  if (MAP_LIKE.has(k) && Array.isArray(v)) return envMap(v as string[]);
  if (k === "networks" && Array.isArray(v)) return networksMap(v as string[]);
  if (k === "depends_on" && Array.isArray(v)) return dependsMap(v as string[]);
  return v;
}

/** Values that the later file replaces whole (compose: shell commands, healthcheck test). */
const REPLACED = new Set(["command", "entrypoint", "healthcheck.test", "extends"]);

/** compose's merge of two values at `path` (below a service or a top-level resource). */
function mergeValue(path: string, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (REPLACED.has(path)) return b;
  if (isObj(a) && isObj(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) {
      out[k] = k in out ? mergeValue(path ? `${path}.${k}` : k, out[k], v) : v;
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const key = BY_KEY[path];
    if (key) return mergeByKey(a, b, key);
    // Other sequences append, without repeating a scalar already there.
    return [...a, ...b.filter((x) => isObj(x) || Array.isArray(x) || !a.includes(x))];
  }
  return b;
}

/**
 * Merges a service definition over another, compose's way (a later file over
 * an earlier one, a service over the one it `extends`): mappings merge by
 * key, ports/volumes/secrets/configs by their unique key, other sequences
 * append, command/entrypoint/healthcheck.test are replaced. The later one's
 * `!reset` and `!override` paths (relative to the service) drop the earlier
 * value first.
 */
function mergeService(a: RawService, b: RawService, tags: Tags = { reset: [], override: [] }) {
  const base: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(structuredClone(a))) base[k] = normalizeKey(k, v);
  for (const p of [...tags.reset, ...tags.override]) {
    if (typeof p[0] === "string" && p.length > 1) {
      base[p[0]] = normalizeKey(p[0], base[p[0]]);
    }
    deleteIn(base, p);
  }
  const later: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(b)) {
    if (v !== undefined) later[k] = k in base ? normalizeKey(k, v) : v;
  }
  return mergeValue("", base, later) as RawService;
}

/**
 * compose `pull_policy` → the Kubernetes policy rkl applies. `daily`,
 * `weekly` and `every_<duration>` pull when the image is missing (rkl keeps
 * no pull times); `build` needs a builder rkl does not have.
 */
function composePullPolicy(
  L: Located,
  v: string | undefined,
  path: readonly PathSegment[],
): "Always" | "IfNotPresent" | "Never" | undefined {
  if (v === undefined) return undefined;
  if (v === "always") return "Always";
  if (v === "never") return "Never";
  if (
    v === "missing" || v === "if_not_present" || v === "daily" || v === "weekly" ||
    /^every_\w+$/.test(v)
  ) {
    return "IfNotPresent";
  }
  if (v === "build") {
    throw L.error(path, "pull_policy build is not supported (rkl does not build images)");
  }
  throw L.error(
    path,
    `pull_policy ${
      JSON.stringify(v)
    } must be always, never, missing, if_not_present, daily, weekly or every_<duration>`,
  );
}

function parsePorts(L: Located, svc: string, raw: NonNullable<RawService["ports"]>): ComposePort[] {
  const out: ComposePort[] = [];
  raw.forEach((p, i) => {
    const where: PathSegment[] = ["services", svc, "ports", i];
    if (typeof p === "object") {
      if (p.published === undefined || p.published === "") return; // not published
      const [lo, hi = lo] = String(p.published).split("-").map(Number);
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || hi < lo) {
        throw L.error(
          [...where, "published"],
          `published port ${JSON.stringify(p.published)} must be 1-65535`,
        );
      }
      out.push({
        hostIP: p.host_ip,
        hostPort: lo,
        ...(hi > lo ? { hostPortEnd: hi } : {}),
        containerPort: p.target,
        protocol: p.protocol ?? "tcp",
      });
      return;
    }
    // ":2283:2283": an empty host IP means every address, as docker reads it.
    const s = /^:[^:]+:[^:]+$/.test(String(p)) ? String(p).slice(1) : String(p);
    const m =
      /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/i
        .exec(s);
    if (!m) {
      throw L.error(
        where,
        `port ${
          JSON.stringify(s)
        } must look like "8080:80", "127.0.0.1:8080:80/udp" or "9000-9001:80-81"`,
      );
    }
    const [, ip, hlo, hhi, clo, chi, proto] = m;
    const cLo = Number(clo), cHi = Number(chi ?? clo);
    if (!hlo) return; // container port only: compose would pick a random host port; rkl publishes nothing
    const hLo = Number(hlo), hHi = Number(hhi ?? hlo);
    if (hHi > hLo && chi === undefined && hHi <= 65535 && cLo >= 1 && cLo <= 65535) {
      // A host range to one container port: docker takes the first free port of the range.
      out.push({
        hostIP: ip,
        hostPort: hLo,
        hostPortEnd: hHi,
        containerPort: cLo,
        protocol: (proto?.toLowerCase() ?? "tcp") as "tcp" | "udp",
      });
      return;
    }
    if (
      hHi - hLo !== cHi - cLo || cHi < cLo || [hLo, hHi, cLo, cHi].some((n) => n < 1 || n > 65535)
    ) {
      throw L.error(
        where,
        `port range ${JSON.stringify(s)} must map ranges of the same length within 1-65535`,
      );
    }
    for (let k = 0; k <= cHi - cLo; k++) {
      out.push({
        hostIP: ip,
        hostPort: hLo + k,
        containerPort: cLo + k,
        protocol: (proto?.toLowerCase() ?? "tcp") as "tcp" | "udp",
      });
    }
  });
  return out;
}

function parseVolumes(
  L: Located,
  svc: string,
  raw: NonNullable<RawService["volumes"]>,
  dir: string,
  declared: Set<string>,
  env: Record<string, string | undefined>,
): ComposeMount[] {
  return raw.map((v, i): ComposeMount => {
    const where: PathSegment[] = ["services", svc, "volumes", i];
    let source: string | undefined,
      target: string,
      readOnly = false,
      createHostPath = true, // docker compose makes a missing bind source for the short syntax
      type: "bind" | "volume" | "tmpfs" | undefined;
    if (typeof v === "string") {
      const parts = v.split(":");
      if (parts.length === 1) [target] = parts;
      else {
        [source, target] = parts;
        const mode = parts[2] ?? "";
        if (parts.length > 3 || !/^(ro|rw|z|Z|ro,z|ro,Z|rw,z|rw,Z|)$/.test(mode)) {
          throw L.error(where, `volume ${JSON.stringify(v)} must look like "SOURCE:TARGET[:ro]"`);
        }
        readOnly = mode.startsWith("ro");
      }
      type = source === undefined ? undefined : /^[./~]/.test(source) ? "bind" : "volume";
    } else {
      source = v.source;
      target = v.target;
      readOnly = v.read_only ?? false;
      type = v.type;
      createHostPath = v.bind?.create_host_path ?? false;
      if (type === "tmpfs") {
        if (!v.target.startsWith("/")) {
          throw L.error(where, `target ${JSON.stringify(v.target)} must be an absolute path`);
        }
        const options = ["nosuid", "nodev"];
        if (v.tmpfs?.size !== undefined) {
          options.push(`size=${tmpfsBytes(L, [...where, "tmpfs", "size"], v.tmpfs.size)}`);
        }
        if (v.tmpfs?.mode !== undefined) options.push(`mode=${v.tmpfs.mode.toString(8)}`);
        return { kind: "tmpfs", source: "", target: v.target, readOnly, options };
      }
    }
    if (!target.startsWith("/")) {
      throw L.error(where, `target ${JSON.stringify(target)} must be an absolute path`);
    }
    if (source === undefined) return { kind: "anonymous", source: "", target, readOnly };
    if (type === "bind") {
      const home = env.HOME ?? "/root";
      return {
        kind: "bind",
        source: joinPath(dir, source.startsWith("~") ? home + source.slice(1) : source),
        target,
        readOnly,
        createHostPath,
        loc: L.at(where),
      };
    }
    if (!declared.has(source)) {
      throw L.error(
        where,
        `volume ${JSON.stringify(source)} is not declared in the top-level volumes`,
      );
    }
    return { kind: "volume", source, target, readOnly };
  });
}

/** A tmpfs size (`64m`, `1g`, bytes) as a number of bytes, at least 1. */
function tmpfsBytes(L: Located, where: PathSegment[], v: string | number): string {
  let bytes: string;
  try {
    bytes = dockerBytes(v);
  } catch (e) {
    throw L.error(where, (e as Error).message);
  }
  if (!/^[1-9]\d*$/.test(bytes)) throw L.error(where, `size ${JSON.stringify(v)} must be above 0`);
  return bytes;
}

/**
 * Service `tmpfs`: `PATH` or `PATH:OPTIONS` (docker's `--tmpfs`), mounted
 * rw,noexec,nosuid,nodev unless the options say otherwise. Options are a
 * fixed set: they become mount(2) data, never free text.
 */
function parseTmpfs(L: Located, svc: string, raw: string | string[] | undefined): ComposeMount[] {
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((entry, i): ComposeMount => {
    const where: PathSegment[] = ["services", svc, "tmpfs", ...(Array.isArray(raw) ? [i] : [])];
    const colon = entry.indexOf(":");
    const target = colon < 0 ? entry : entry.slice(0, colon);
    const opts = colon < 0 ? [] : entry.slice(colon + 1).split(",").filter(Boolean);
    if (!target.startsWith("/") || target.split("/").includes("..")) {
      throw L.error(where, `tmpfs target ${JSON.stringify(target)} must be an absolute path`);
    }
    const flags = new Map([["exec", "noexec"], ["suid", "nosuid"], ["dev", "nodev"]]);
    const set = new Set(["noexec", "nosuid", "nodev"]);
    const values: string[] = [];
    let readOnly = false;
    for (const o of opts) {
      const [k, v] = o.includes("=")
        ? [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)]
        : [o];
      if (v === undefined && flags.has(k)) set.delete(flags.get(k)!);
      else if (v === undefined && [...flags.values()].includes(k)) set.add(k);
      else if (v === undefined && (k === "ro" || k === "rw")) readOnly = k === "ro";
      else if (k === "size" && v) values.push(`size=${tmpfsBytes(L, where, v)}`);
      else if (k === "mode" && v && /^[0-7]{1,4}$/.test(v)) values.push(`mode=${v}`);
      else if ((k === "uid" || k === "gid") && v && /^\d{1,10}$/.test(v)) values.push(`${k}=${v}`);
      else {
        throw L.error(
          where,
          `tmpfs option ${
            JSON.stringify(o)
          } must be size=SIZE, mode=OCTAL, uid=N, gid=N, ro, rw, exec, noexec, suid, nosuid, dev or nodev`,
        );
      }
    }
    return { kind: "tmpfs", source: "", target, readOnly, options: [...set, ...values] };
  });
}

function healthcheck(
  L: Located,
  svc: string,
  h: RawService["healthcheck"],
): ComposeHealthcheck | undefined {
  if (!h || h.disable || h.test === undefined) return undefined;
  const where: PathSegment[] = ["services", svc, "healthcheck"];
  let test: string[];
  if (typeof h.test === "string") test = ["/bin/sh", "-c", h.test];
  else if (h.test[0] === "NONE") return undefined;
  else if (h.test[0] === "CMD") test = h.test.slice(1);
  else if (h.test[0] === "CMD-SHELL") test = ["/bin/sh", "-c", h.test.slice(1).join(" ")];
  else throw L.error([...where, "test"], 'test must start with "CMD", "CMD-SHELL" or "NONE"');
  if (test.length === 0) throw L.error([...where, "test"], "test has no command");
  const dur = (k: "interval" | "timeout" | "start_period" | "start_interval", def: number) => {
    try {
      return h[k] === undefined ? def : parseDuration(h[k]!);
    } catch (e) {
      throw L.error([...where, k], (e as Error).message);
    }
  };
  return {
    test,
    intervalMs: dur("interval", 30_000),
    timeoutMs: dur("timeout", 30_000),
    retries: h.retries ?? 3,
    startPeriodMs: dur("start_period", 0),
    startIntervalMs: dur("start_interval", 5_000),
  };
}

/** Names of networks, volumes, configs and secrets (compose-spec, first character alphanumeric). */
export const COMPOSE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** compose ulimit names → RLIMIT_* (setrlimit(2)). */
const ULIMITS: Record<string, string> = {
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

function sysctlMap(
  L: Located,
  svc: string,
  raw: RawService["sysctls"],
  hostNetwork: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Array.isArray(raw)
    ? raw.map((kv) =>
      [
        kv.slice(0, kv.indexOf("=") < 0 ? kv.length : kv.indexOf("=")),
        kv.slice(kv.indexOf("=") + 1),
      ] as const
    )
    : Object.entries(raw ?? {}).map(([k, v]) => [k, String(v ?? "")] as const);
  for (const [k, v] of entries) {
    if (!/^[a-z0-9_.]+$/.test(k) || !sysctlAllowed(k, hostNetwork)) {
      throw L.error(
        ["services", svc, "sysctls"],
        `sysctl ${JSON.stringify(k)} is not one a container may set (net.*${
          hostNetwork ? " is not allowed with network_mode host" : ""
        }, kernel.shm*/msg*/sem, fs.mqueue.*)`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Interpolates, collects tags and validates one parsed file. */
function prepareFile(
  src: SourceDoc,
  dir: string,
  env: Record<string, string | undefined>,
  warnings: Warning[],
): Prepared {
  warnings.push(...interpolateDoc(src, env));
  if (!isObj(src.value)) {
    throw new SpecError({ file: src.file, line: 1, column: 1 }, "a compose file must be a mapping");
  }
  const tags = collectTags(src);
  // The compose spec: keys starting with x- are extensions, ignored silently.
  const res = validate(src, projectSchema, { silent: (key) => key.startsWith("x-") });
  warnings.push(...res.warnings);
  return { src, raw: res.data, tags, dir };
}

function parseOne(text: string, file: string): SourceDoc {
  const docs = parseYamlDocuments(text, file);
  if (docs.length > 1) {
    throw new SpecError({ file }, "a compose file holds one YAML document");
  }
  return docs[0];
}

/**
 * The services of a file with their `extends` resolved: the base service (in
 * this file, or in `extends.file`, read with `readFile`) merged under the
 * extending one with compose's merge rules, `!reset`/`!override` included.
 */
function resolveExtends(
  file: Prepared,
  env: Record<string, string | undefined>,
  readFile: LoadComposeOptions["readFile"],
  warnings: Warning[],
  loaded: Map<string, Prepared>,
): Record<string, RawService | null> {
  const done = new Map<string, RawService>();
  const resolve = (pf: Prepared, name: string, chain: string[]): RawService => {
    const key = `${pf.src.file}\0${name}`;
    const cached = done.get(key);
    if (cached) return cached;
    const s = pf.raw.services?.[name] ?? {};
    if (s.extends === undefined) return s;
    const where: PathSegment[] = ["services", name, "extends"];
    const fail = (detail: string) =>
      new SpecError(
        { file: pf.src.file, ...locate(pf.src, where) },
        `extends cannot be resolved: ${detail}`,
      );
    if (chain.includes(key)) {
      const names = [...chain.slice(chain.indexOf(key)), key].map((k) => k.split("\0")[1]);
      throw fail(`extends cycle: ${names.join(" -> ")}`);
    }
    const ext = typeof s.extends === "string" ? { service: s.extends, file: undefined } : s.extends;
    let base = pf;
    if (ext.file !== undefined) {
      const path = joinPath(pf.dir, ext.file);
      let other = loaded.get(path);
      if (!other) {
        let text: string | undefined;
        try {
          text = readFile?.(path);
        } catch (e) {
          throw fail((e as Error).message.split("\n")[0]);
        }
        if (text === undefined) throw fail(`file ${JSON.stringify(path)} does not exist`);
        other = prepareFile(parseOne(text, path), dirnameOf(path), env, warnings);
        for (const svc of Object.values(other.raw.services ?? {})) {
          if (svc) absolutePaths(svc, other.dir);
        }
        loaded.set(path, other);
      }
      base = other;
    }
    if (!base.raw.services || !(ext.service in base.raw.services)) {
      throw fail(
        `service ${JSON.stringify(ext.service)} is not defined in ${
          base === pf ? "this file" : base.src.file
        }`,
      );
    }
    const parent = resolve(base, ext.service, [...chain, key]);
    const { extends: _, ...own } = s;
    const out = mergeService(parent, own, tagsUnder(pf.tags, ["services", name]));
    done.set(key, out);
    return out;
  };
  return Object.fromEntries(
    Object.entries(file.raw.services ?? {}).map(([n, v]) => [n, v ? resolve(file, n, []) : v]),
  );
}

/**
 * Relative paths of a service from a file that `extends.file` names are
 * relative to that file (compose's rule): bind sources, `env_file`, and a
 * bundle directory as `image`. Made absolute here, in place.
 */
function absolutePaths(s: RawService, dir: string): void {
  const rel = (p: string) => p.startsWith(".") ? joinPath(dir, p) : p;
  if (s.image !== undefined && isBundlePath(s.image) && s.image.startsWith(".")) {
    s.image = joinPath(dir, s.image);
  }
  s.volumes = s.volumes?.map((v) => {
    if (typeof v !== "string") {
      return v.type === "bind" && v.source !== undefined ? { ...v, source: rel(v.source) } : v;
    }
    const parts = v.split(":");
    if (parts.length > 1 && parts[0].startsWith(".")) parts[0] = rel(parts[0]);
    return parts.join(":");
  });
  if (typeof s.env_file === "string") s.env_file = rel(s.env_file);
  else if (Array.isArray(s.env_file)) {
    s.env_file = s.env_file.map((f) =>
      typeof f === "string" ? rel(f) : { ...f, path: rel(f.path) }
    );
  }
}

/**
 * A named volume's driver: `local` only. Its `driver_opts` as docker's local
 * driver reads them for a bind (`type: none`, `o: bind`, `device`: an
 * absolute host directory); a tmpfs or a device mount is refused at its line.
 */
function volumeDriver(
  L: Located,
  name: string,
  o: NonNullable<RawProject["volumes"]>[string],
): { device?: string } {
  if (!o) return {};
  if (o.driver !== undefined && o.driver !== "local") {
    throw L.error(
      ["volumes", name, "driver"],
      `volume driver ${JSON.stringify(o.driver)} is not supported: rkl has the local driver only`,
    );
  }
  const opts = o.driver_opts;
  if (!opts) return {};
  for (const k of Object.keys(opts)) {
    if (!["type", "o", "device"].includes(k)) {
      throw L.error(
        ["volumes", name, "driver_opts", k],
        `driver_opts ${JSON.stringify(k)} is not one of the local driver's type, o, device`,
      );
    }
  }
  const type = String(opts.type ?? "");
  const mountOpts = String(opts.o ?? "").split(",").filter(Boolean);
  if (type === "tmpfs") {
    throw L.error(
      ["volumes", name, "driver_opts", "type"],
      "a tmpfs volume is not supported: give the service a tmpfs mount instead (volumes type tmpfs or tmpfs:)",
    );
  }
  if (
    (type !== "none" && type !== "") || !mountOpts.includes("bind") || opts.device === undefined
  ) {
    throw L.error(
      ["volumes", name, "driver_opts"],
      "driver_opts must be a bind ({type: none, o: bind, device: /abs/dir}); rkl mounts no devices or network filesystems",
    );
  }
  const bad = mountOpts.find((x) => x !== "bind" && x !== "rbind");
  if (bad) {
    throw L.error(
      ["volumes", name, "driver_opts", "o"],
      `mount option ${
        JSON.stringify(bad)
      } is not supported with a bind volume (use :ro on the service's mount)`,
    );
  }
  const device = String(opts.device);
  if (!device.startsWith("/") || device.split("/").includes("..")) {
    throw L.error(
      ["volumes", name, "driver_opts", "device"],
      `device ${
        JSON.stringify(device)
      } must be an absolute path without '..' (docker passes it to mount as it is)`,
    );
  }
  return { device };
}

/** Loads, interpolates, validates and merges compose files into a project. */
export function loadCompose(
  files: ComposeFile[],
  options: LoadComposeOptions,
): { project: ComposeProject; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const srcs = files.map((f) => parseOne(f.text, f.file));
  const L = located(srcs);

  // The project name comes first: `${COMPOSE_PROJECT_NAME}` interpolates to it.
  let topName: string | undefined;
  for (const src of srcs) {
    const node = isMap(src.doc.contents) ? src.doc.contents.get("name", true) : undefined;
    if (isScalar(node) && typeof node.value === "string") {
      try {
        topName = interpolate(node.value, options.env);
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        throw L.error(["name"], e.message);
      }
    }
  }
  const rawName = options.projectName ?? topName ??
    options.dir.split("/").filter(Boolean).pop() ?? "default";
  const name = normalizeProjectName(rawName);
  if (!name) {
    throw new SpecError(
      options.projectName ? { file: "-p" } : L.at(["name"]),
      `project name ${JSON.stringify(rawName)} has no usable characters`,
    );
  }
  const env = { ...options.env, COMPOSE_PROJECT_NAME: name };

  const prepared: Prepared[] = [];
  let warnedVersion = false;
  files.forEach((f, i) => {
    const p = prepareFile(srcs[i], f.dir ?? options.dir, env, warnings);
    if (p.raw.version !== undefined && !warnedVersion) {
      // Once per project, as docker compose says it.
      warnedVersion = true;
      warnings.push({
        file: f.file,
        ...locate(p.src, ["version"], { key: true }),
        path: "version",
        message: "the attribute `version` is obsolete and ignored; remove it",
      });
    }
    if (p.raw.include !== undefined) {
      // Dropping it would drop whole services without a word.
      throw new SpecError(
        { file: f.file, ...locate(p.src, ["include"], { key: true }), path: "include" },
        "include is not supported yet: pass the included files with -f before this one (their relative paths then resolve against the first file's directory)",
      );
    }
    prepared.push(p);
  });

  // Merge: each file's `extends` first (within the file and across files),
  // then the files in order, a later file's `!reset`/`!override` dropping
  // what the earlier ones set at that path.
  const merged: RawProject = {};
  const services: Record<string, RawService> = {};
  const loaded = new Map<string, Prepared>();
  for (const p of prepared) {
    const own = resolveExtends(p, env, options.readFile, warnings, loaded);
    for (const path of [...p.tags.reset, ...p.tags.override]) {
      if (path[0] === "services" && path.length === 2) delete services[String(path[1])];
      else if (path[0] !== "services") deleteIn(merged, path);
    }
    if (p.raw.name !== undefined) merged.name = p.raw.name;
    for (const [k, v] of Object.entries(own)) {
      services[k] = services[k]
        ? mergeService(services[k], v ?? {}, tagsUnder(p.tags, ["services", k]))
        : (v ?? {});
    }
    for (const key of ["networks", "volumes", "configs", "secrets"] as const) {
      if (p.raw[key]) merged[key] = mergeValue("", merged[key] ?? {}, p.raw[key]) as never;
    }
  }
  if (Object.keys(services).length === 0) {
    throw L.error(["services"], "the project defines no services");
  }

  // Top-level names become parts of host paths and interface names: the
  // compose-spec's pattern, and no name made only of dots.
  for (const kind of ["networks", "volumes", "configs", "secrets"] as const) {
    for (const n of Object.keys(merged[kind] ?? {})) {
      if (!COMPOSE_NAME.test(n)) {
        throw L.error(
          [kind, n],
          `${kind.slice(0, -1)} name ${
            JSON.stringify(n)
          } must start with a letter or digit and use only a-z, A-Z, 0-9, '_', '.', '-'`,
        );
      }
    }
  }
  const declaredNets = new Set(Object.keys(merged.networks ?? {}));
  const declaredVols = new Set(Object.keys(merged.volumes ?? {}));
  const declaredConfigs = new Set(Object.keys(merged.configs ?? {}));
  const declaredSecrets = new Set(Object.keys(merged.secrets ?? {}));
  const profiles = new Set(options.profiles ?? []);
  const enabled = Object.entries(services).filter(([, s]) =>
    !s.profiles || s.profiles.some((p) => profiles.has(p))
  );
  const enabledNames = new Set(enabled.map(([n]) => n));
  let usesDefault = false;

  const out: ComposeService[] = enabled.map(([svc, s]) => {
    const at = (...p: PathSegment[]) => ["services", svc, ...p];
    // The compose spec's `[a-zA-Z0-9._-]+`, with a letter or digit in it (a
    // container name is derived from it, lower-cased, see containerName()).
    if (!/^[a-zA-Z0-9._-]+$/.test(svc) || !/[a-zA-Z0-9]/.test(svc)) {
      throw L.error(
        ["services", svc],
        `service name ${JSON.stringify(svc)} must use a-z, A-Z, 0-9, '_', '.', '-'`,
      );
    }
    if (!s.image) {
      throw L.error(
        ["services", svc],
        "service needs 'image' (an image or a bundle directory); 'build' is not supported",
      );
    }
    const nets = networksMap(s.networks);
    let networkMode: ComposeService["networkMode"];
    let networkTarget: string | undefined;
    if (
      s.network_mode !== undefined && s.network_mode !== "bridge" && s.network_mode !== "default"
    ) {
      const join = /^(service|container):(.+)$/.exec(s.network_mode);
      if (s.network_mode !== "host" && s.network_mode !== "none" && !join) {
        throw L.error(
          at("network_mode"),
          `network_mode ${
            JSON.stringify(s.network_mode)
          } must be bridge, host, none, service:NAME or container:NAME`,
        );
      }
      if (s.networks !== undefined) {
        throw L.error(at("network_mode"), "network_mode cannot be combined with networks");
      }
      if (s.mac_address !== undefined) {
        throw L.error(
          at("mac_address"),
          `mac_address cannot be combined with network_mode ${s.network_mode}: the service has no interface of its own`,
        );
      }
      if (join) {
        // docker refuses these with another container's network namespace.
        for (const k of ["ports", "hostname", "mac_address"] as const) {
          if ((s as Record<string, unknown>)[k] !== undefined) {
            throw L.error(
              at(k),
              `${k} cannot be combined with network_mode ${s.network_mode}: set it on ${join[2]}`,
            );
          }
        }
        if (join[1] === "service" && !(join[2] in services)) {
          throw L.error(at("network_mode"), `service ${JSON.stringify(join[2])} is not defined`);
        }
        if (join[1] === "service" && join[2] === svc) {
          throw L.error(at("network_mode"), "a service cannot join its own network namespace");
        }
        if (join[1] === "container" && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(join[2])) {
          throw L.error(
            at("network_mode"),
            `container name ${JSON.stringify(join[2])} must use a-z, A-Z, 0-9, '_', '.', '-'`,
          );
        }
        networkMode = join[1] as "service" | "container";
        networkTarget = join[2];
      } else networkMode = s.network_mode as "host" | "none";
    }
    // Fixed addresses and MACs: given to CNI (host-local's `ips`, bridge's `mac`).
    type NetOpts = { ipv4_address?: string; ipv6_address?: string; mac_address?: string };
    const fixedCount = (s.mac_address !== undefined ? 1 : 0) +
      Object.values(nets).filter((o) => {
        const x = o as NetOpts | null;
        return x?.ipv4_address !== undefined || x?.mac_address !== undefined;
      }).length;
    if (fixedCount > 0 && (s.deploy?.replicas ?? s.scale ?? 1) > 1) {
      throw L.error(
        at(s.mac_address !== undefined ? "mac_address" : "networks"),
        "a fixed address or MAC cannot be given to more than one replica",
      );
    }
    const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
    if (s.mac_address !== undefined && !MAC.test(s.mac_address)) {
      throw L.error(
        at("mac_address"),
        `mac_address ${JSON.stringify(s.mac_address)} must look like "02:42:ac:11:00:02"`,
      );
    }
    for (const [n, o] of Object.entries(nets)) {
      const x = o as NetOpts | null;
      if (x?.ipv4_address !== undefined && !/^(\d{1,3})(\.\d{1,3}){3}$/.test(x.ipv4_address)) {
        throw L.error(
          at("networks", n, "ipv4_address"),
          `ipv4_address ${JSON.stringify(x.ipv4_address)} must be an IPv4 address`,
        );
      }
      if (x?.mac_address !== undefined && !MAC.test(x.mac_address)) {
        throw L.error(
          at("networks", n, "mac_address"),
          `mac_address ${JSON.stringify(x.mac_address)} must look like "02:42:ac:11:00:02"`,
        );
      }
      if (x?.ipv6_address !== undefined) {
        warnings.push({
          ...L.at(at("networks", n, "ipv6_address")),
          message:
            "ipv6_address is not applied: rkl's compose networks are IPv4 only; reach the service by its name instead",
        });
      }
    }
    for (const n of Object.keys(nets)) {
      if (!declaredNets.has(n) && n !== "default") {
        throw L.error(
          at("networks", n),
          `network ${JSON.stringify(n)} is not declared in the top-level networks`,
        );
      }
    }
    if (networkMode) {
      // No CNI network: the host's namespace, or loopback only.
    } else if (Object.keys(nets).length === 0) {
      nets.default = null;
      usesDefault = true;
    } else if ("default" in nets) usesDefault = true;
    const deps = { ...dependsMap(s.depends_on) };
    // links: SERVICE[:ALIAS]; compose starts linked services first.
    const links = (s.links ?? []).map((l, i) => {
      const [service, alias = service, ...rest] = l.split(":");
      if (
        rest.length > 0 || !(service in services) || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)
      ) {
        throw L.error(
          at("links", i),
          service in services || rest.length > 0
            ? `link ${JSON.stringify(l)} must look like "SERVICE" or "SERVICE:ALIAS"`
            : `service ${JSON.stringify(service)} is not defined`,
        );
      }
      if (!(service in deps)) deps[service] = { condition: "service_started" };
      return [service, alias] as const;
    });
    // The joined service starts first and stops last, as docker compose orders them.
    if (networkMode === "service" && !(networkTarget! in deps)) {
      deps[networkTarget!] = { condition: "service_started" };
    }
    for (const d of Object.keys(deps)) {
      if (!(d in services)) {
        throw L.error(
          at("depends_on", Array.isArray(s.depends_on) ? s.depends_on.indexOf(d) : d),
          `service ${JSON.stringify(d)} is not defined`,
        );
      }
    }
    const refs = (kind: "configs" | "secrets", declared: Set<string>) =>
      (s[kind] ?? []).map((r, i) => {
        const source = typeof r === "string" ? r : r.source;
        if (!declared.has(source)) {
          throw L.error(
            at(kind, i),
            `${kind.slice(0, -1)} ${
              JSON.stringify(source)
            } is not declared in the top-level ${kind}`,
          );
        }
        let owner: ComposeMount["owner"];
        if (typeof r !== "string" && (r.uid ?? r.gid ?? r.mode) !== undefined) {
          // The service gets its own copy, owned and moded as asked (read-only all the same).
          const id = (k: "uid" | "gid") => {
            const v = r[k];
            if (v === undefined) return 0;
            if (!/^\d{1,10}$/.test(String(v)) || Number(v) > 4294967294) {
              throw L.error([...at(kind, i), k], `${k} ${JSON.stringify(v)} must be a number`);
            }
            return Number(v);
          };
          let mode = kind === "secrets" ? 0o400 : 0o444;
          if (r.mode !== undefined) {
            // "0440" (YAML 1.1 octal, as compose reads it), 0o440, or a string of octal digits.
            const src = L.srcs.findLast((x) => x.doc.hasIn([...at(kind, i), "mode"]));
            const node = src?.doc.getIn([...at(kind, i), "mode"], true) as Scalar | undefined;
            const text = typeof r.mode === "string" ? r.mode : node?.source ?? String(r.mode);
            const m = /^0?o?([0-7]{1,4})$/.exec(text);
            mode = m && (text.startsWith("0") || typeof r.mode === "string")
              ? parseInt(m[1], 8)
              : typeof r.mode === "number"
              ? r.mode
              : NaN;
            if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
              throw L.error(
                [...at(kind, i), "mode"],
                `mode ${JSON.stringify(text)} must be a file mode such as 0440 (at most 0777)`,
              );
            }
          }
          owner = { uid: id("uid"), gid: id("gid"), mode };
        }
        const target = typeof r === "string" || !r.target
          ? (kind === "secrets" ? `/run/secrets/${source}` : `/${source}`)
          : r.target;
        return {
          kind: kind.slice(0, -1) as "config" | "secret",
          source,
          target: target.startsWith("/") ? target : `/run/secrets/${target}`,
          readOnly: true,
          ...(owner ? { owner } : {}),
        };
      });
    const env: Record<string, string> = {};
    const envFiles = s.env_file === undefined
      ? []
      : Array.isArray(s.env_file)
      ? s.env_file
      : [s.env_file];
    envFiles.forEach((f, i) => {
      const path = joinPath(options.dir, typeof f === "string" ? f : f.path);
      const required = typeof f === "string" ? true : f.required ?? true;
      let text: string | undefined;
      try {
        text = options.readFile?.(path);
      } catch (e) {
        // Not a regular file, too big, unreadable: `Cannot read PATH: why`, at the line naming it.
        throw L.error(
          at("env_file", ...(Array.isArray(s.env_file) ? [i] : [])),
          (e as Error).message.split("\n")[0],
        );
      }
      if (text === undefined) {
        if (required) {
          throw L.error(
            at("env_file", ...(Array.isArray(s.env_file) ? [i] : [])),
            `env_file ${JSON.stringify(path)} does not exist`,
          );
        }
        return;
      }
      Object.assign(env, parseDotEnv(text));
    });
    for (const [k, v] of Object.entries(envMap(s.environment))) {
      const value = v ?? options.env[k];
      if (value !== undefined) env[k] = value;
    }
    // Kubernetes' rule for names (printable ASCII but '='): a newline in a
    // name would forge a line of the container's environment.
    for (const k of Object.keys(env)) {
      const bad = envNameError(k);
      if (bad) throw L.error(at("environment"), bad);
    }
    let user: ComposeService["user"];
    if (s.user !== undefined) {
      // "uid", "uid:gid", "name", "name:group": names are resolved against the
      // bundle's /etc/passwd and /etc/group when the container is made.
      const m = /^([a-z_][a-z0-9_.-]*\$?|\d+)(?::([a-z_][a-z0-9_.-]*|\d+))?$/i.exec(String(s.user));
      if (!m) {
        throw L.error(
          at("user"),
          `user ${JSON.stringify(s.user)} must be "UID", "UID:GID", "NAME" or "NAME:GROUP"`,
        );
      }
      const num = (x: string | undefined) => x !== undefined && /^\d+$/.test(x);
      user = {
        uid: num(m[1]) ? Number(m[1]) : undefined,
        gid: num(m[2]) ? Number(m[2]) : undefined,
        name: num(m[1]) ? undefined : m[1],
        group: m[2] !== undefined && !num(m[2]) ? m[2] : undefined,
        loc: L.at(at("user")),
      };
    }
    const q = (p: PathSegment[], f: () => string) => {
      try {
        const v = f();
        parseQuantity(v);
        return v;
      } catch (e) {
        throw L.error(p, (e as Error).message);
      }
    };
    const limits = s.deploy?.resources?.limits;
    const cpusRaw = limits?.cpus ?? s.cpus;
    const memRaw = limits?.memory ?? s.mem_limit;
    const cmd = (v: string | string[] | null | undefined, p: PathSegment[]) => {
      if (v === undefined || v === null) return undefined;
      try {
        return typeof v === "string" ? shellSplit(v) : v;
      } catch (e) {
        throw L.error(p, (e as Error).message);
      }
    };
    // One hook per kind, its command only: rkl runs it as the container's own process runs.
    const hook = (k: "post_start" | "pre_stop", list: NonNullable<RawService["post_start"]>) => {
      if (list.length !== 1) {
        throw L.error(
          at(k),
          `${k} with ${list.length} hooks is not supported: give one hook (chain commands with sh -c)`,
        );
      }
      for (const f of ["user", "privileged", "working_dir", "environment"] as const) {
        if (list[0][f] !== undefined) {
          throw L.error(
            at(k, 0, f),
            `${k} ${f} is not supported: hooks run as the service's process does (use sh -c "cd DIR && VAR=x CMD")`,
          );
        }
      }
      const argv = cmd(list[0].command, at(k, 0, "command"))!;
      if (argv.length === 0) throw L.error(at(k, 0, "command"), `${k} command is empty`);
      return argv;
    };
    let stopGraceSec = 10;
    if (s.stop_grace_period !== undefined) {
      try {
        stopGraceSec = Math.ceil(parseDuration(s.stop_grace_period) / 1000);
      } catch (e) {
        throw L.error(at("stop_grace_period"), (e as Error).message);
      }
    }
    return {
      name: svc,
      image: isBundlePath(s.image) ? joinPath(options.dir, s.image) : s.image,
      pullPolicy: composePullPolicy(L, s.pull_policy, at("pull_policy")),
      entrypoint: cmd(s.entrypoint, at("entrypoint")),
      command: cmd(s.command, at("command")),
      environment: env,
      ports: networkMode ? [] : parsePorts(L, svc, s.ports ?? []),
      mounts: [
        ...parseVolumes(L, svc, s.volumes ?? [], options.dir, declaredVols, options.env),
        ...parseTmpfs(L, svc, s.tmpfs),
        ...refs("configs", declaredConfigs),
        ...refs("secrets", declaredSecrets),
      ],
      networks: Object.entries(nets).map(([n, o], i) => {
        const x = o as { ipv4_address?: string; mac_address?: string } | null;
        // A service-level mac_address is its first network's, as docker gives it.
        const mac = x?.mac_address ?? (i === 0 ? s.mac_address : undefined);
        return {
          name: n,
          aliases: o?.aliases ?? [],
          ...(x?.ipv4_address !== undefined ? { ipv4Address: x.ipv4_address } : {}),
          ...(mac !== undefined ? { macAddress: mac } : {}),
        };
      }),
      dependsOn: Object.entries(deps).map(([d, o]) => ({
        service: d,
        condition: o.condition ?? "service_started",
        required: o.required ?? true,
      }))
        .filter((d) => enabledNames.has(d.service) || d.required),
      healthcheck: healthcheck(L, svc, s.healthcheck),
      restart: (s.restart?.split(":")[0] ?? "no") as ComposeService["restart"],
      containerName: s.container_name,
      hostname: s.hostname,
      workingDir: s.working_dir,
      user,
      cpus: cpusRaw === undefined
        ? undefined
        : q(at(limits?.cpus !== undefined ? "deploy" : "cpus"), () => cpusQuantity(cpusRaw)),
      memory: memRaw === undefined
        ? undefined
        : q(at(limits?.memory !== undefined ? "deploy" : "mem_limit"), () => dockerBytes(memRaw)),
      replicas: s.deploy?.mode === "global" ? 1 : s.deploy?.replicas ?? s.scale ?? 1,
      labels: Object.fromEntries(
        Object.entries(Array.isArray(s.labels) ? envMap(s.labels) : s.labels ?? {}).map((
          [k, v],
        ) => [k, String(v ?? "")]),
      ),
      privileged: s.privileged ?? false,
      capAdd: s.cap_add ?? [],
      capDrop: s.cap_drop ?? [],
      readOnly: s.read_only ?? false,
      stopGraceSec,
      tty: s.tty ?? false,
      init: s.init ?? false,
      hooks: {
        ...(s.post_start ? { postStart: hook("post_start", s.post_start) } : {}),
        ...(s.pre_stop ? { preStop: hook("pre_stop", s.pre_stop) } : {}),
      },
      links: links.map(([service, alias]) => ({ service, alias })),
      securityOpt: securityOpts(L, svc, s.security_opt, options.dir),
      networkMode,
      ...(networkTarget !== undefined ? { networkTarget } : {}),
      stopSignal: s.stop_signal === undefined ? undefined : signalName(s.stop_signal),
      shmSize: s.shm_size === undefined
        ? undefined
        : Number(q(at("shm_size"), () => dockerBytes(s.shm_size!))),
      sysctls: sysctlMap(L, svc, s.sysctls, networkMode === "host"),
      ulimits: Object.entries(s.ulimits ?? {}).map(([k, v]) => {
        const type = ULIMITS[k];
        if (!type) {
          throw L.error(
            at("ulimits", k),
            `unknown ulimit ${JSON.stringify(k)} (one of ${Object.keys(ULIMITS).join(", ")})`,
          );
        }
        const soft = typeof v === "number" ? v : v.soft;
        const hard = typeof v === "number" ? v : v.hard;
        if (soft < 0 || hard < soft) {
          throw L.error(at("ulimits", k), "soft must be at most hard, both not negative");
        }
        return { type, soft, hard };
      }),
    };
  });

  // Container names are DNS labels (lower case, '_' and '.' become '-'): two
  // services that differ only there would share their containers' names.
  const derived = new Map<string, string>();
  for (const s of out) {
    if (s.containerName) continue;
    const key = s.name.toLowerCase().replace(/[^a-z0-9-]/g, "-");
    const other = derived.get(key);
    if (other !== undefined) {
      throw L.error(
        ["services", s.name],
        `service name ${JSON.stringify(s.name)} gives the same container names as ${
          JSON.stringify(other)
        } (names are lower-cased, '_' and '.' become '-'): rename one or set container_name`,
      );
    }
    derived.set(key, s.name);
  }
  for (const s of out) {
    for (const d of s.dependsOn) {
      if (!enabledNames.has(d.service)) {
        throw L.error(
          ["services", s.name, "depends_on"],
          `service ${JSON.stringify(d.service)} is required but not enabled (profiles)`,
        );
      }
    }
    if (s.containerName && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(s.containerName)) {
      throw L.error(
        ["services", s.name, "container_name"],
        `container_name ${
          JSON.stringify(s.containerName)
        } must start with a letter or digit and use only a-z, A-Z, 0-9, '_', '.', '-' (63 at most)`,
      );
    }
    if (s.containerName && s.replicas > 1) {
      throw L.error(
        ["services", s.name, "container_name"],
        "container_name cannot be used with more than one replica",
      );
    }
  }

  // Dependency order, and cycles.
  const order: ComposeService[] = [];
  const state = new Map<string, "visiting" | "done">();
  const byName = new Map(out.map((s) => [s.name, s]));
  const visitSvc = (s: ComposeService, chain: string[]) => {
    if (state.get(s.name) === "done") return;
    if (state.get(s.name) === "visiting") {
      const cycle = [...chain.slice(chain.indexOf(s.name)), s.name];
      throw L.error(["services", s.name, "depends_on"], `dependency cycle: ${cycle.join(" -> ")}`);
    }
    state.set(s.name, "visiting");
    for (const d of s.dependsOn) visitSvc(byName.get(d.service)!, [...chain, s.name]);
    state.set(s.name, "done");
    order.push(s);
  };
  for (const s of out) visitSvc(s, []);

  const networks = Object.entries(merged.networks ?? {}).map(([n, o]) => ({
    name: n,
    external: o?.external ?? false,
    subnet: o?.ipam?.config?.[0]?.subnet,
  }));
  if (usesDefault && !declaredNets.has("default")) {
    networks.unshift({ name: "default", external: false, subnet: undefined });
  }
  for (const kind of ["configs", "secrets"] as const) {
    for (const [n, o] of Object.entries(merged[kind] ?? {})) {
      if (o.external) {
        throw L.error([kind, n, "external"], `external ${kind} need a swarm; rkl has none`);
      }
      const sources = [o.file, (o as { content?: string }).content, o.environment]
        .filter((x) => x !== undefined);
      if (sources.length !== 1) {
        throw L.error(
          [kind, n],
          `${kind.slice(0, -1)} ${JSON.stringify(n)} needs exactly one of file${
            kind === "configs" ? ", content" : ""
          } or environment`,
        );
      }
    }
  }
  const fileOf = (kind: "configs" | "secrets") =>
    Object.entries(merged[kind] ?? {}).map(([n, o]) => ({
      name: n,
      file: o.file === undefined ? undefined : joinPath(options.dir, o.file),
      content: (o as { content?: string }).content ??
        (o.environment !== undefined ? options.env[o.environment] ?? "" : undefined),
    }));
  const fileIndex = (f: string) => files.findIndex((x) => x.file === f);
  warnings.sort((a, b) => fileIndex(a.file) - fileIndex(b.file) || (a.line ?? 0) - (b.line ?? 0));

  return {
    project: {
      name,
      dir: options.dir,
      files: files.map((f) => f.file),
      services: order,
      networks,
      volumes: Object.entries(merged.volumes ?? {}).map(([n, o]) => ({
        name: n,
        external: o?.external ?? false,
        ...volumeDriver(L, n, o),
      })),
      configs: fileOf("configs"),
      secrets: fileOf("secrets"),
    },
    warnings,
  };
}
