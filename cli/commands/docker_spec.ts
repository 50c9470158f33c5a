/**
 * `rkl run` / `rkl create` flags → the container spec the YAML front end
 * builds (src/spec/container.ts), with docker's meaning for each flag. Pure:
 * the caller passes in what it read (env files, the host's environment, the
 * names in use), so the whole mapping is covered by unit tests.
 */
import { checkVolumeName } from "../../src/workloads/volumes.ts";
import { randomHexId } from "../../src/base/hex.ts";
import type { ContainerSpec, LoadedContainer, ResolvedMount } from "../../src/spec/container.ts";
import { UsageError } from "../../src/errors.ts";
import { DNS1123_LABEL, envNameError, RESTART_LABEL } from "../../src/spec/names.ts";
import { isBundlePath } from "../../src/image/reference.ts";

/** The flags of `rkl run` as commander hands them over. */
export interface RunFlags {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  name?: string;
  publish: string[];
  env: string[];
  envFile: string[];
  volume: string[];
  mount: string[];
  tmpfs: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  cpus?: string;
  memory?: string;
  pidsLimit?: string;
  network?: string;
  hostname?: string;
  restart?: string;
  readOnly?: boolean;
  capAdd: string[];
  capDrop: string[];
  securityOpt: string[];
  label: string[];
  init?: boolean;
  privileged?: boolean;
  pull?: string;
}

export const RUN_DEFAULTS: Pick<
  RunFlags,
  | "publish"
  | "env"
  | "envFile"
  | "volume"
  | "tmpfs"
  | "capAdd"
  | "capDrop"
  | "securityOpt"
  | "label"
  | "mount"
> = {
  publish: [],
  env: [],
  envFile: [],
  volume: [],
  mount: [],
  tmpfs: [],
  capAdd: [],
  capDrop: [],
  securityOpt: [],
  label: [],
};

/** What the spec needs from outside: files, environment, the working directory. */
export interface SpecInputs {
  /** Text of each --env-file, by the path given. */
  envFiles: Record<string, string>;
  /** The caller's environment, for `-e NAME` (docker copies the value when set). */
  environ: Record<string, string>;
  cwd: string;
  /** The host's catatonit, for --init (undefined when not installed). */
  initBinary?: string;
  /** A free host port, for `-p CTR` and `-p IP::CTR` (docker picks an ephemeral one). */
  freePort: () => number;
  /** Where the named volume NAME keeps its data (`-v NAME:/dir`). */
  volumeDir: (name: string) => string;
}

/** How the network flag maps onto the core's create options. */
export interface NetworkChoice {
  /** CNI network name, or null for loopback only. */
  network: string | null;
  hostNetwork?: boolean;
}

export function networkChoice(v: string | undefined): NetworkChoice {
  if (v === undefined || v === "bridge" || v === "default") return { network: "rkl0" };
  if (v === "none") return { network: null };
  if (v === "host") return { network: null, hostNetwork: true };
  if (v.startsWith("container:")) {
    throw new UsageError(
      `--network ${
        JSON.stringify(v)
      } is not supported by rkl run: use a pod (rkl pod run) or compose network_mode`,
    );
  }
  return { network: v };
}

const usage = (flag: string, v: string, why: string) =>
  new UsageError(`${flag} ${JSON.stringify(v)}: ${why}`);

function keyValue(kv: string): [string, string | undefined] {
  const i = kv.indexOf("=");
  return i < 0 ? [kv, undefined] : [kv.slice(0, i), kv.slice(i + 1)];
}

/** `-e K=V`, `-e K` (from the caller's environment, skipped when unset) and --env-file lines. */
export function envEntries(f: RunFlags, inputs: SpecInputs): ContainerSpec["env"] {
  const out = new Map<string, string>();
  const add = (flag: string, kv: string) => {
    const [k, v] = keyValue(kv);
    const bad = k === "" ? "must not be empty" : envNameError(k);
    if (bad) throw usage(flag, kv, `variable name ${bad}`);
    if (v !== undefined) out.set(k, v);
    else if (inputs.environ[k] !== undefined) out.set(k, inputs.environ[k]);
  };
  // docker: env files first, then -e, so -e wins.
  for (const file of f.envFile) {
    const text = inputs.envFiles[file] ?? "";
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.replace(/\r$/, "");
      if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
      add(`--env-file ${file}:${i + 1}:`, line);
    }
  }
  for (const kv of f.env) add("-e", kv);
  return [...out].map(([name, value]) => ({ name, value }));
}

/** `[IP:]HOST:CTR[/proto]`, `IP::CTR` and `CTR` (an ephemeral host port). */
export function parsePublish(v: string, freePort: () => number): ContainerSpec["ports"][number] {
  const [main, proto = "tcp"] = v.split("/");
  if (!["tcp", "udp"].includes(proto.toLowerCase()) || v.split("/").length > 2) {
    throw usage("-p", v, "the protocol must be tcp or udp");
  }
  let ip: string | undefined, host: string | undefined, ctr: string;
  const bracket = /^\[([0-9a-fA-F:]+)\]:(.*)$/.exec(main);
  const rest = bracket ? bracket[2] : main;
  const parts = rest.split(":");
  if (bracket) {
    ip = bracket[1];
    [host, ctr] = parts.length === 2 ? parts : [undefined, parts[0]];
  } else if (parts.length === 1) [ctr] = parts;
  else if (parts.length === 2) [host, ctr] = parts;
  else if (parts.length === 3) [ip, host, ctr] = parts;
  else throw usage("-p", v, "use [IP:]HOST_PORT:CONTAINER_PORT[/udp]");
  const port = (s: string, what: string) => {
    if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
      throw usage("-p", v, `${what} must be a port number 1-65535 (ranges are not supported)`);
    }
    return Number(s);
  };
  if (ip !== undefined && !/^(\d{1,3}\.){3}\d{1,3}$/.test(ip)) {
    throw usage("-p", v, "the host IP must be an IPv4 address");
  }
  return {
    containerPort: port(ctr, "the container port"),
    hostPort: host === undefined || host === "" ? freePort() : port(host, "the host port"),
    protocol: proto.toUpperCase() as "TCP" | "UDP",
    ...(ip && ip !== "0.0.0.0" ? { hostIP: ip } : {}),
  };
}

/**
 * `-v SRC:DST[:ro|rw]`: a host path (absolute, or ./relative to cwd), or a
 * named volume (SRC a name, as docker tells them apart: no '/' and not
 * starting with '.'), which the create makes when missing. `volumeDir` says
 * where a volume keeps its data.
 */
export function parseVolume(
  v: string,
  cwd: string,
  volumeDir: (name: string) => string,
  newName: () => string = randomHexId,
): ResolvedMount {
  const parts = v.split(":");
  if (parts.length === 1) return anonymousVolume("-v", v, v, false, volumeDir, newName);
  if (parts.length > 3) {
    throw usage("-v", v, "use HOST_PATH:CONTAINER_PATH[:ro] or VOLUME:CONTAINER_PATH[:ro]");
  }
  const [src, dst, mode = "rw"] = parts;
  const named = !src.startsWith("/") && !src.startsWith(".");
  if (named) {
    try {
      checkVolumeName(src);
    } catch (e) {
      throw usage("-v", v, (e as Error).message);
    }
  }
  if (!dst.startsWith("/") || dst.split("/").includes("..")) {
    throw usage("-v", v, "the container path must be absolute, without '..'");
  }
  const opts = mode.split(",");
  if (!opts.every((o) => ["ro", "rw", "z", "Z"].includes(o))) {
    throw usage("-v", v, "options must be ro or rw (no propagation options)");
  }
  if (named) {
    return {
      source: volumeDir(src),
      destination: dst,
      readOnly: opts.includes("ro"),
      kind: "hostPath",
      hostPathType: "",
      namedVolume: src,
      populate: true, // docker's copy of the image's files into an empty volume
      path: ["-v", v],
    };
  }
  const source = src.startsWith("/") ? src : `${cwd}/${src}`;
  return {
    source: source.replace(/\/+$/, "") || "/",
    destination: dst,
    readOnly: opts.includes("ro"),
    kind: "hostPath",
    hostPathType: "",
    createMissingDir: true, // docker's -v makes a missing source a directory
    path: ["-v", v], // the flag and its value: located at `-v: VALUE` (runSpec's source)
  };
}

/**
 * An anonymous volume at `target` (`-v /dir`, `--mount type=volume` without
 * a source): a volume of its own with a new 64-hex name, as docker's, that
 * `rm -v` and `run --rm` remove with the container.
 */
function anonymousVolume(
  flag: string,
  v: string,
  target: string,
  readOnly: boolean,
  volumeDir: (name: string) => string,
  newName: () => string,
): ResolvedMount {
  if (!target.startsWith("/") || target.split("/").includes("..")) {
    throw usage(flag, v, "the container path must be absolute, without '..'");
  }
  const name = newName();
  return {
    source: volumeDir(name),
    destination: target,
    readOnly,
    kind: "hostPath",
    hostPathType: "",
    namedVolume: name,
    anonymous: true,
    populate: true,
    path: [flag, v],
  };
}

/**
 * docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`:
 * a bind's source must be an absolute path that exists (docker's rule, where
 * `-v` makes a missing one); a volume's is a name (made when missing, as with
 * `-v`); a tmpfs takes `tmpfs-size` and `tmpfs-mode`. Keys docker has that
 * rkl does not apply (propagation, volume drivers and options) are refused.
 */
export function parseMountFlag(
  v: string,
  volumeDir: (name: string) => string,
  newName: () => string = randomHexId,
): ResolvedMount {
  const fail = (why: string) => usage("--mount", v, why);
  const fields = new Map<string, string | undefined>();
  for (const part of v.split(",")) {
    if (part === "") continue;
    const [k, val] = keyValue(part);
    const key = ({ src: "source", dst: "target", destination: "target", ro: "readonly" } as Record<
      string,
      string
    >)[k] ?? k;
    if (fields.has(key)) throw fail(`${JSON.stringify(key)} is given twice`);
    fields.set(key, val);
  }
  const type = fields.get("type") ?? "volume";
  const target = fields.get("target");
  if (!target || !target.startsWith("/") || target.split("/").includes("..")) {
    throw fail("give target=/absolute/path (without '..')");
  }
  const ro = fields.has("readonly") ? fields.get("readonly") ?? "true" : "false";
  if (!["true", "false", "1", "0"].includes(ro)) throw fail("readonly must be true or false");
  const readOnly = ro === "true" || ro === "1";
  const allowed: Record<string, string[]> = {
    bind: ["type", "source", "target", "readonly"],
    volume: ["type", "source", "target", "readonly", "volume-nocopy"],
    tmpfs: ["type", "target", "readonly", "tmpfs-size", "tmpfs-mode"],
  };
  if (!allowed[type]) throw fail(`type must be bind, volume or tmpfs, not ${JSON.stringify(type)}`);
  for (const k of fields.keys()) {
    if (!allowed[type].includes(k)) {
      throw fail(
        `${JSON.stringify(k)} is not supported for type=${type} (keys: ${
          allowed[type].join(", ")
        })`,
      );
    }
  }
  const source = fields.get("source");
  if (type === "tmpfs") {
    const opts = ["noexec", "nosuid", "nodev"];
    const size = fields.get("tmpfs-size");
    if (size !== undefined) opts.push(`size=${bytes("--mount", size)}`);
    const mode = fields.get("tmpfs-mode");
    if (mode !== undefined) {
      if (!/^[0-7]{1,4}$/.test(mode)) throw fail("tmpfs-mode must be octal, such as 1777");
      opts.push(`mode=${mode}`);
    }
    return { source: "tmpfs", destination: target, readOnly, kind: "tmpfs", tmpfsOptions: opts };
  }
  if (!source && type === "volume") {
    const m = anonymousVolume("--mount", v, target, readOnly, volumeDir, newName);
    return { ...m, populate: !fields.has("volume-nocopy") };
  }
  if (!source) throw fail("give source=");
  if (type === "volume") {
    try {
      checkVolumeName(source);
    } catch (e) {
      throw fail((e as Error).message);
    }
    return {
      source: volumeDir(source),
      destination: target,
      readOnly,
      kind: "hostPath",
      hostPathType: "",
      namedVolume: source,
      populate: !fields.has("volume-nocopy"),
      path: ["--mount", v],
    };
  }
  if (!source.startsWith("/")) throw fail("a bind's source must be an absolute path");
  return {
    source: source.replace(/\/+$/, "") || "/",
    destination: target,
    readOnly,
    kind: "hostPath",
    // docker's --mount: a missing source is an error, not made.
    hostPathType: "",
    path: ["--mount", v],
  };
}

/** `--tmpfs PATH[:OPTIONS]`, mounted rw,noexec,nosuid,nodev as docker does. */
export function parseTmpfsFlag(v: string): ResolvedMount {
  const colon = v.indexOf(":");
  const target = colon < 0 ? v : v.slice(0, colon);
  const opts = colon < 0 ? [] : v.slice(colon + 1).split(",").filter(Boolean);
  if (!target.startsWith("/") || target.split("/").includes("..")) {
    throw usage("--tmpfs", v, "the path must be absolute, without '..'");
  }
  const flags = new Map([["exec", "noexec"], ["suid", "nosuid"], ["dev", "nodev"]]);
  const set = new Set(["noexec", "nosuid", "nodev"]);
  const values: string[] = [];
  let readOnly = false;
  for (const o of opts) {
    const [k, val] = keyValue(o);
    if (val === undefined && flags.has(k)) set.delete(flags.get(k)!);
    else if (val === undefined && [...flags.values()].includes(k)) set.add(k);
    else if (val === undefined && (k === "ro" || k === "rw")) readOnly = k === "ro";
    else if (k === "size" && val) values.push(`size=${bytes("--tmpfs", val)}`);
    else if (k === "mode" && val && /^[0-7]{1,4}$/.test(val)) values.push(`mode=${val}`);
    else if ((k === "uid" || k === "gid") && val && /^\d{1,10}$/.test(val)) {
      values.push(`${k}=${val}`);
    } else {
      throw usage(
        "--tmpfs",
        v,
        `option ${
          JSON.stringify(o)
        } must be size=SIZE, mode=OCTAL, uid=N, gid=N, ro, rw, exec, noexec, suid, nosuid, dev or nodev`,
      );
    }
  }
  return {
    source: "tmpfs",
    destination: target,
    readOnly,
    kind: "tmpfs",
    tmpfsOptions: [...set, ...values],
  };
}

/** docker sizes: `512m`, `1g`, `100k`, bytes. */
export function bytes(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(v.trim());
  if (!m) throw usage(flag, v, `must look like "512m", "1g" or a number of bytes`);
  const unit = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2].toLowerCase() as "k"
  ];
  const n = Math.ceil(Number(m[1]) * unit);
  if (n < 1) throw usage(flag, v, "must be at least 1 byte");
  return n;
}

/** `-u USER[:GROUP]`: numbers, or names resolved in the image at create. */
export function userFields(
  v: string,
): Pick<ContainerSpec, "userNames"> & { uid?: number; gid?: number } {
  const [u, g, extra] = v.split(":");
  if (extra !== undefined || u === "") throw usage("-u", v, "use USER[:GROUP] (names or numbers)");
  const num = (s: string) => /^\d{1,10}$/.test(s) && Number(s) <= 2 ** 32 - 2;
  const name = (s: string) => /^[a-zA-Z_][a-zA-Z0-9_.-]{0,31}$/.test(s);
  for (const s of [u, g].filter((x) => x !== undefined)) {
    if (!num(s!) && !name(s!)) throw usage("-u", v, `${JSON.stringify(s)} is not a user or group`);
  }
  const out: ReturnType<typeof userFields> = {};
  if (num(u)) out.uid = Number(u);
  if (g !== undefined && num(g)) out.gid = Number(g);
  const userName = num(u) ? undefined : u;
  const groupName = g !== undefined && !num(g) ? g : undefined;
  if (userName || groupName) {
    out.userNames = { user: userName, group: groupName, path: ["-u"] };
  }
  return out;
}

export const RESTART_POLICIES = ["no", "always", "on-failure", "unless-stopped"];

/** `--security-opt`: the keys rkl applies; others refused naming what is supported. */
export function securityOpts(list: string[]): {
  sc: Partial<ContainerSpec["securityContext"]>;
  unconfinedPaths?: boolean;
} {
  const sc: Partial<ContainerSpec["securityContext"]> = {};
  let unconfinedPaths: boolean | undefined;
  for (const opt of list) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(opt);
    const [key, value] = m ? [m[1], m[2]] : ["", undefined];
    if (key === "no-new-privileges" && (value === undefined || /^(true|false)$/.test(value))) {
      if (value !== "false") sc.allowPrivilegeEscalation = false;
    } else if (key === "seccomp" && value) {
      if (value === "unconfined") sc.seccompProfile = { type: "Unconfined" };
      else if (value === "builtin") sc.seccompProfile = { type: "RuntimeDefault" };
      else if (value.startsWith("/")) {
        sc.seccompProfile = { type: "Localhost", localhostProfile: value };
      } else throw usage("--security-opt", opt, "a seccomp profile file must be an absolute path");
    } else if (key === "systempaths" && value === "unconfined") {
      unconfinedPaths = true;
    } else if (
      (key === "label" && (value === "disable" || value === "disabled")) ||
      (key === "apparmor" && value === "unconfined")
    ) {
      // rkl applies no SELinux labels and loads no AppArmor profile.
    } else {
      throw usage(
        "--security-opt",
        opt,
        "use no-new-privileges, seccomp=unconfined|builtin|/FILE, systempaths=unconfined, label=disable or apparmor=unconfined",
      );
    }
  }
  return { sc, unconfinedPaths };
}

/** `--label K=V` (and `K`, an empty value), repeated: docker's labels. */
export function parseLabels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const [k, v] = keyValue(kv);
    if (k === "") throw usage("--label", kv, "the key must not be empty");
    out[k] = v ?? "";
  }
  return out;
}

/** The labels: `--label K=V` (and `K`, an empty value) plus the restart policy. */
function labels(f: RunFlags): Record<string, string> {
  const out = parseLabels(f.label);
  if (f.restart !== undefined) {
    const [policy, count] = f.restart.split(":");
    if (!RESTART_POLICIES.includes(policy)) {
      throw usage("--restart", f.restart, `must be one of ${RESTART_POLICIES.join(", ")}`);
    }
    if (count !== undefined) {
      // docker's on-failure:N: at most N restarts (0: no limit); no other policy takes a count.
      if (policy !== "on-failure") {
        throw usage("--restart", f.restart, `a retry count goes only with on-failure`);
      }
      if (!/^\d{1,9}$/.test(count)) {
        throw usage("--restart", f.restart, "the retry count must be a whole number");
      }
      out[RESTART_LABEL] = Number(count) === 0 ? policy : `${policy}:${Number(count)}`;
      return out;
    }
    out[RESTART_LABEL] = policy;
  }
  return out;
}

/** A name docker would take and rkl cannot (container names are DNS labels here). */
export function checkName(name: string): void {
  if (name.length > 63 || !DNS1123_LABEL.test(name)) {
    throw usage(
      "--name",
      name,
      "container names in rkl are DNS labels: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit",
    );
  }
}

const ADJECTIVES = [
  "brave",
  "calm",
  "eager",
  "fancy",
  "gentle",
  "happy",
  "jolly",
  "keen",
  "lucid",
  "merry",
  "nifty",
  "proud",
  "quick",
  "quiet",
  "sharp",
  "sleepy",
  "sunny",
  "swift",
  "tender",
  "witty",
]; // deno-fmt-ignore
const SURNAMES = [
  "babbage", "curie", "dijkstra", "euler", "fermat", "galois", "hopper", "kepler", "lamport",
  "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wirth", "yalow",
]; // deno-fmt-ignore

/**
 * docker's `adjective_surname`, with '-' (names are DNS labels here); a
 * number is appended while the name is taken.
 */
export function generateName(taken: (n: string) => boolean, random = Math.random): string {
  const pick = <T>(a: T[]) => a[Math.floor(random() * a.length)];
  const base = `${pick(ADJECTIVES)}-${pick(SURNAMES)}`;
  if (!taken(base)) return base;
  for (let i = 2;; i++) if (!taken(`${base}-${i}`)) return `${base}-${i}`;
}

/** The flags, image and command → the spec the YAML front end would have built. */
export function runSpec(
  f: RunFlags,
  image: string,
  command: string[],
  inputs: SpecInputs & { name: string },
): LoadedContainer {
  if (/\.ya?ml$/i.test(image)) {
    throw new UsageError(
      `${
        JSON.stringify(image)
      } looks like a file: rkl run takes an image; run a container file with: rkl container run ${image}`,
    );
  }
  checkName(inputs.name);
  const pull = f.pull ?? "missing";
  const pullPolicy = ({ always: "Always", missing: "IfNotPresent", never: "Never" } as const)[
    pull as "always"
  ];
  if (!pullPolicy) throw usage("--pull", pull, "must be always, missing or never");
  const mounts = [
    ...f.volume.map((v) => parseVolume(v, inputs.cwd, inputs.volumeDir)),
    ...f.mount.map((v) => parseMountFlag(v, inputs.volumeDir)),
    ...f.tmpfs.map(parseTmpfsFlag),
  ];
  const seen = new Set<string>();
  for (const m of mounts) {
    if (seen.has(m.destination)) {
      throw new UsageError(
        `${JSON.stringify(m.destination)} is mounted twice (-v, --mount, --tmpfs)`,
      );
    }
    seen.add(m.destination);
  }
  const ports = f.publish.map((p) => parsePublish(p, inputs.freePort));
  const portKeys = new Set<string>();
  for (const p of ports) {
    const k = `${p.hostIP ?? ""}:${p.hostPort}/${p.protocol}`;
    if (portKeys.has(k)) throw new UsageError(`host port ${k} is published twice`);
    portKeys.add(k);
  }
  const limits: Record<string, string> = {};
  if (f.cpus !== undefined) {
    const n = Number(f.cpus);
    if (!/^\d*\.?\d+$/.test(f.cpus) || !(n > 0)) {
      throw usage("--cpus", f.cpus, "must be a positive number such as 0.5 or 2");
    }
    limits.cpu = f.cpus;
  }
  if (f.memory !== undefined) limits.memory = String(bytes("-m", f.memory));
  let pidsLimit: number | undefined;
  if (f.pidsLimit !== undefined) {
    if (!/^-?\d{1,9}$/.test(f.pidsLimit)) {
      throw usage("--pids-limit", f.pidsLimit, "must be a whole number (0 or -1: unlimited)");
    }
    pidsLimit = Math.max(0, Number(f.pidsLimit));
  }
  const user = f.user !== undefined ? userFields(f.user) : {};
  const sec = securityOpts(f.securityOpt);
  const caps = (l: string[]) => l.map((c) => c.toUpperCase().replace(/^CAP_/, ""));
  for (const c of [...f.capAdd, ...f.capDrop]) {
    if (!/^(CAP_)?[A-Z_]+$/i.test(c)) {
      throw usage(f.capAdd.includes(c) ? "--cap-add" : "--cap-drop", c, "is not a capability name");
    }
  }
  if (f.workdir !== undefined && !f.workdir.startsWith("/")) {
    throw usage("-w", f.workdir, "the working directory must be an absolute path");
  }
  if (f.hostname !== undefined && (f.hostname.length > 63 || !DNS1123_LABEL.test(f.hostname))) {
    throw usage("--hostname", f.hostname, "must be a DNS label (lower case, digits, '-')");
  }
  if (f.init && !inputs.initBinary) {
    throw new UsageError("--init needs catatonit, which is not installed", {
      hint: "run scripts/setup.sh (Debian package catatonit)",
    });
  }
  if (f.entrypoint !== undefined && f.entrypoint.includes("\0")) {
    throw usage("--entrypoint", f.entrypoint, "must not contain NUL");
  }
  const img = isBundlePath(image) && !image.startsWith("/")
    ? `${inputs.cwd}/${image.replace(/^\.\//, "")}`
    : image;
  const spec: ContainerSpec = {
    name: inputs.name,
    image: img,
    imagePullPolicy: pullPolicy,
    // docker: --entrypoint replaces ENTRYPOINT and drops the image's CMD (as
    // Kubernetes command does); arguments after the image replace CMD.
    ...(f.entrypoint !== undefined ? { command: f.entrypoint === "" ? [] : [f.entrypoint] } : {}),
    ...(command.length > 0 ? { args: command } : {}),
    env: envEntries(f, inputs),
    workingDir: f.workdir,
    ports,
    resources: Object.keys(limits).length > 0 ? { limits } : {},
    mounts,
    securityContext: {
      ...(f.privileged ? { privileged: true } : {}),
      ...(f.capAdd.length || f.capDrop.length
        ? { capabilities: { add: caps(f.capAdd), drop: caps(f.capDrop) } }
        : {}),
      ...(user.uid !== undefined ? { runAsUser: user.uid } : {}),
      // docker: `-u 1000` runs with group 0 unless a group is given.
      ...(user.gid !== undefined
        ? { runAsGroup: user.gid }
        : user.uid !== undefined && !user.userNames
        ? { runAsGroup: 0 }
        : {}),
      ...(f.readOnly ? { readOnlyRootFilesystem: true } : {}),
      ...sec.sc,
    },
    ...(sec.unconfinedPaths ? { maskedPaths: [], readonlyPaths: [] } : {}),
    tty: f.tty ?? false,
    // -i: conmon keeps a stdin pipe (docker's OpenStdin). docker's StdinOnce: a
    // foreground run without a terminal closes it when the input ends (`echo x | run -i`);
    // with -t or -d it outlives each attach.
    ...(f.interactive ? { stdin: true, stdinOnce: !f.tty && !f.detach } : {}),
    labels: labels(f),
    ...(f.hostname !== undefined ? { hostname: f.hostname } : {}),
    ...(user.userNames ? { userNames: user.userNames } : {}),
    ...(f.init ? { init: inputs.initBinary } : {}),
    ...(pidsLimit !== undefined ? { pidsLimit } : {}),
  };
  const file = "rkl run";
  return {
    spec,
    warnings: [],
    // A path that starts with a flag (`["-v", VALUE]`, `["-u"]`) is located at that flag.
    source: {
      file,
      at: (path) =>
        typeof path[0] === "string" && path[0].startsWith("-")
          ? { file: path[0], path: path.slice(1).join(".") }
          : { file, path: path.join(".") },
    },
  };
}
