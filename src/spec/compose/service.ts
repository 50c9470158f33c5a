/**
 * One merged service → a {@linkcode ComposeService}: its name and image
 * checked, its network mode, fixed addresses, dependencies and links, its
 * configs and secrets, environment and user, then every other field.
 */
import type { Scalar } from "yaml";
import { isBundlePath } from "../paths.ts";
import { parseDotEnv, shellSplit } from "../interpolate.ts";
import { envNameError } from "../names.ts";
import { joinPath } from "../paths.ts";
import { parseQuantity } from "../quantity.ts";
import type { PathSegment } from "../source.ts";
import type { Located } from "./located.ts";
import { parseTmpfs, parseVolumes } from "./mounts.ts";
import { composePullPolicy, healthcheck, securityOpts, sysctlMap } from "./options.ts";
import { parsePorts } from "./ports.ts";
import type { RawService } from "./schema.ts";
import type { ExecHook } from "../container_spec.ts";
import type { ComposeMount, ComposeService, ServiceContext } from "./types.ts";
import {
  checkFixedAddresses,
  defaultNetwork,
  dependencies,
  networkModeOf,
} from "./service_network.ts";
import {
  cpusQuantity,
  dockerBytes,
  envMap,
  networksMap,
  parseDuration,
  signalName,
  ULIMITS,
} from "./values.ts";

/** The service, and whether it is on the project's default network. */
export function toService(
  ctx: ServiceContext,
  svc: string,
  s: RawService,
): { service: ComposeService; usesDefault: boolean } {
  const { L, options } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  checkNameAndImage(L, svc, s);
  const image = s.image!;
  const nets = networksMap(s.networks);
  const { networkMode, networkTarget } = networkModeOf(ctx, svc, s);
  checkFixedAddresses(ctx, svc, s, nets);
  const usesDefault = defaultNetwork(ctx, svc, nets, networkMode);
  const { deps, links } = dependencies(ctx, svc, s, networkMode, networkTarget);
  const env = environment(ctx, svc, s);
  const user = userOf(L, svc, s);
  const limits = s.deploy?.resources?.limits;
  const cpusRaw = limits?.cpus ?? s.cpus;
  const memRaw = limits?.memory ?? s.mem_limit;
  let stopGraceSec = 10;
  if (s.stop_grace_period !== undefined) {
    try {
      stopGraceSec = Math.ceil(parseDuration(s.stop_grace_period) / 1000);
    } catch (e) {
      throw L.error(at("stop_grace_period"), (e as Error).message);
    }
  }
  const service: ComposeService = {
    name: svc,
    image: isBundlePath(image) ? joinPath(options.dir, image) : image,
    pullPolicy: composePullPolicy(L, s.pull_policy, at("pull_policy")),
    entrypoint: cmd(L, s.entrypoint, at("entrypoint")),
    command: cmd(L, s.command, at("command")),
    environment: env,
    ports: networkMode ? [] : parsePorts(L, svc, s.ports ?? []),
    mounts: [
      ...parseVolumes(L, svc, s.volumes ?? [], options.dir, ctx.declared.volumes, options.env),
      ...parseTmpfs(L, svc, s.tmpfs),
      ...fileRefs(L, svc, s, "configs", ctx.declared.configs),
      ...fileRefs(L, svc, s, "secrets", ctx.declared.secrets),
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
      ...(o.restart ? { restart: true } : {}),
    }))
      .filter((d) => ctx.enabledNames.has(d.service) || d.required),
    healthcheck: healthcheck(L, svc, s.healthcheck),
    restart: restartOf(ctx, svc, s),
    containerName: s.container_name,
    hostname: s.hostname,
    workingDir: s.working_dir,
    user,
    cpus: cpusRaw === undefined ? undefined : quantity(
      L,
      at(limits?.cpus !== undefined ? "deploy" : "cpus"),
      () => cpusQuantity(cpusRaw),
    ),
    memory: memRaw === undefined ? undefined : quantity(
      L,
      at(limits?.memory !== undefined ? "deploy" : "mem_limit"),
      () => dockerBytes(memRaw),
    ),
    // docker: -1 is unlimited, 0 leaves the default.
    ...((p) => p === undefined || p === 0 ? {} : { pidsLimit: p === -1 ? 0 : p })(
      limits?.pids ?? s.pids_limit,
    ),
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
    ...(s.stdin_open ? { stdinOpen: true } : {}),
    init: s.init ?? false,
    hooks: {
      ...(s.post_start?.length ? { postStart: hooks(ctx, svc, "post_start", s.post_start) } : {}),
      ...(s.pre_stop?.length ? { preStop: hooks(ctx, svc, "pre_stop", s.pre_stop) } : {}),
    },
    links: links.map(([service, alias]) => ({ service, alias })),
    securityOpt: securityOpts(L, svc, s.security_opt, options.dir),
    networkMode,
    ...(networkTarget !== undefined ? { networkTarget } : {}),
    stopSignal: s.stop_signal === undefined ? undefined : signalName(s.stop_signal),
    shmSize: s.shm_size === undefined
      ? undefined
      : Number(quantity(L, at("shm_size"), () => dockerBytes(s.shm_size!))),
    sysctls: sysctlMap(L, svc, s.sysctls, networkMode === "host"),
    ulimits: ulimits(L, svc, s),
  };
  return { service, usesDefault };
}

function checkNameAndImage(L: Located, svc: string, s: RawService): void {
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
}

/** The service's configs or secrets as mounts; each must be declared at the top level. */
function fileRefs(
  L: Located,
  svc: string,
  s: RawService,
  kind: "configs" | "secrets",
  declared: Set<string>,
): ComposeMount[] {
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  return (s[kind] ?? []).map((r, i) => {
    const source = typeof r === "string" ? r : r.source;
    if (!declared.has(source)) {
      throw L.error(
        at(kind, i),
        `${kind.slice(0, -1)} ${JSON.stringify(source)} is not declared in the top-level ${kind}`,
      );
    }
    const owner = typeof r !== "string" && (r.uid ?? r.gid ?? r.mode) !== undefined
      ? fileRefOwner(L, at(kind, i), kind, r)
      : undefined;
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
}

/** The service gets its own copy, owned and moded as asked (read-only all the same). */
function fileRefOwner(
  L: Located,
  where: PathSegment[],
  kind: "configs" | "secrets",
  r: { uid?: string | number; gid?: string | number; mode?: string | number },
): NonNullable<ComposeMount["owner"]> {
  const id = (k: "uid" | "gid") => {
    const v = r[k];
    if (v === undefined) return 0;
    if (!/^\d{1,10}$/.test(String(v)) || Number(v) > 4294967294) {
      throw L.error([...where, k], `${k} ${JSON.stringify(v)} must be a number`);
    }
    return Number(v);
  };
  let mode = kind === "secrets" ? 0o400 : 0o444;
  if (r.mode !== undefined) {
    // "0440" (YAML 1.1 octal, as compose reads it), 0o440, or a string of octal digits.
    const src = L.srcs.findLast((x) => x.doc.hasIn([...where, "mode"]));
    const node = src?.doc.getIn([...where, "mode"], true) as Scalar | undefined;
    const text = typeof r.mode === "string" ? r.mode : node?.source ?? String(r.mode);
    const m = /^0?o?([0-7]{1,4})$/.exec(text);
    mode = m && (text.startsWith("0") || typeof r.mode === "string")
      ? parseInt(m[1], 8)
      : typeof r.mode === "number"
      ? r.mode
      : NaN;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw L.error(
        [...where, "mode"],
        `mode ${JSON.stringify(text)} must be a file mode such as 0440 (at most 0777)`,
      );
    }
  }
  return { uid: id("uid"), gid: id("gid"), mode };
}

/** `env_file`s in order, then `environment` (a bare name takes the loader's env). */
function environment(ctx: ServiceContext, svc: string, s: RawService): Record<string, string> {
  const { L, options } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
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
  return env;
}

/**
 * "uid", "uid:gid", "name", "name:group": names are resolved against the
 * bundle's /etc/passwd and /etc/group when the container is made.
 */
function userOf(L: Located, svc: string, s: RawService): ComposeService["user"] {
  if (s.user === undefined) return undefined;
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  const m = /^([a-z_][a-z0-9_.-]*\$?|\d+)(?::([a-z_][a-z0-9_.-]*|\d+))?$/i.exec(String(s.user));
  if (!m) {
    throw L.error(
      at("user"),
      `user ${JSON.stringify(s.user)} must be "UID", "UID:GID", "NAME" or "NAME:GROUP"`,
    );
  }
  const num = (x: string | undefined) => x !== undefined && /^\d+$/.test(x);
  return {
    uid: num(m[1]) ? Number(m[1]) : undefined,
    gid: num(m[2]) ? Number(m[2]) : undefined,
    name: num(m[1]) ? undefined : m[1],
    group: m[2] !== undefined && !num(m[2]) ? m[2] : undefined,
    loc: L.at(at("user")),
  };
}

/** A Kubernetes quantity made by `f`, checked; an error at `p`. */
function quantity(L: Located, p: PathSegment[], f: () => string): string {
  try {
    const v = f();
    parseQuantity(v);
    return v;
  } catch (e) {
    throw L.error(p, (e as Error).message);
  }
}

/** A command as argv: a string is split as a shell would. */
function cmd(
  L: Located,
  v: string | string[] | null | undefined,
  p: PathSegment[],
): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  try {
    return typeof v === "string" ? shellSplit(v) : v;
  } catch (e) {
    throw L.error(p, (e as Error).message);
  }
}

/**
 * A service's `post_start` or `pre_stop` hooks (compose-spec lifecycle
 * hooks): each command run in the container in order, as `docker exec`
 * would run it with the hook's `user` (UID[:GID], or root), `privileged`,
 * `working_dir` and `environment` over the container's.
 */
function hooks(
  ctx: ServiceContext,
  svc: string,
  k: "post_start" | "pre_stop",
  list: NonNullable<RawService["post_start"]>,
): ExecHook[] {
  const { L, options } = ctx;
  const at = (...p: PathSegment[]) => ["services", svc, k, ...p];
  return list.map((h, i) => {
    const argv = cmd(L, h.command, at(i, "command"))!;
    if (argv.length === 0) throw L.error(at(i, "command"), `${k} command is empty`);
    const out: ExecHook = { command: argv };
    if (h.user !== undefined) {
      const m = /^(\d+|root)(?::(\d+|root))?$/.exec(String(h.user));
      if (!m) {
        throw L.error(
          at(i, "user"),
          `${k} user ${
            JSON.stringify(h.user)
          } must be "UID", "UID:GID" or "root": rkl does not look hook user names up (write the numbers from the image's /etc/passwd)`,
        );
      }
      const id = (x: string) => x === "root" ? 0 : Number(x);
      out.user = { uid: id(m[1]), gid: m[2] !== undefined ? id(m[2]) : 0 };
    }
    if (h.privileged) out.privileged = true;
    if (h.working_dir !== undefined) {
      if (!h.working_dir.startsWith("/")) {
        throw L.error(at(i, "working_dir"), `${k} working_dir must be an absolute path`);
      }
      out.cwd = h.working_dir;
    }
    if (h.environment !== undefined) {
      const env: string[] = [];
      for (const [name, v] of Object.entries(envMap(h.environment))) {
        const bad = envNameError(name);
        if (bad) throw L.error(at(i, "environment"), bad);
        const value = v ?? options.env[name];
        if (value !== undefined) env.push(`${name}=${value}`);
      }
      out.env = env;
    }
    return out;
  });
}

/** `ulimits`, as RLIMIT_* with soft and hard values. */
function ulimits(L: Located, svc: string, s: RawService): ComposeService["ulimits"] {
  const at = (...p: PathSegment[]) => ["services", svc, ...p];
  return Object.entries(s.ulimits ?? {}).map(([k, v]) => {
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
  });
}

/**
 * `restart`, or `deploy.restart_policy.condition` over it as docker compose
 * reads it (none → no, any → always; no condition: no); `max_attempts` is
 * kept by neither here. `deploy.resources.reservations` are warned: rkl sets
 * limits only.
 */
function restartOf(ctx: ServiceContext, svc: string, s: RawService): ComposeService["restart"] {
  const at = (...p: PathSegment[]) => ["services", svc, "deploy", ...p];
  if (s.deploy?.resources?.reservations !== undefined) {
    ctx.warnings.push({
      ...ctx.L.at(at("resources", "reservations")),
      message:
        "deploy.resources.reservations is not applied: rkl sets limits only (use deploy.resources.limits)",
    });
  }
  const policy = s.deploy?.restart_policy;
  if (policy === undefined) return (s.restart?.split(":")[0] ?? "no") as ComposeService["restart"];
  const c = policy.condition ?? "";
  const mapped = ({ "": "no", none: "no", no: "no", any: "always", always: "always" } as Record<
    string,
    ComposeService["restart"]
  >)[c] ?? (c === "on-failure" || c === "unless-stopped" ? c : undefined);
  if (!mapped) {
    throw ctx.L.error(
      at("restart_policy", "condition"),
      `restart_policy condition ${JSON.stringify(c)} must be none, on-failure or any`,
    );
  }
  return mapped;
}
