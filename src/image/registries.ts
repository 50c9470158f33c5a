/**
 * Where images are fetched from, configured in `/etc/rkl/registries.yaml`
 * (k3s's `registries.yaml` shape, which is what containerd's hosts.toml and
 * CRI-O's registries.conf express too):
 *
 * ```yaml
 * mirrors:
 *   docker.io:
 *     endpoint: ["http://127.0.0.1:5000"]   # tried in order, the name stays docker.io/…
 *     fallback: false                        # rkl: never try docker.io itself
 * configs:
 *   registry.example.com:
 *     insecure: true                         # plain HTTP allowed
 *     auth: {username: u, password: p}
 * ```
 *
 * Credentials also come from a docker-style auth.json (`rkl login`).
 * Plain HTTP is used only for loopback hosts and hosts marked insecure.
 */
// yaml loads only when a registries file exists: most commands never read one.
import type { YAMLMap } from "yaml";
import { SpecError } from "../errors.ts";
import { DOCKER_HUB } from "./reference.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../sys/readfile.ts";

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistriesConfig {
  mirrors: Record<string, { endpoint: string[]; fallback: boolean }>;
  configs: Record<string, { insecure: boolean; auth?: Credentials }>;
  /** The file it came from, for messages. */
  file?: string;
}

export interface Endpoint {
  /** `scheme://host[:port]` with no trailing slash. */
  url: string;
  /** The host[:port] the URL names (its configs entry, its credentials). */
  host: string;
  mirror: boolean;
  /** A scheme-less upstream: try https, then http when allowed. */
  httpFallback: boolean;
}

/** registries.yaml and auth.json: regular files of at most 1 MiB (src/sys/readfile.ts). */
function readConfigFile(file: string): string {
  return readTextBounded(file, { max: MAX_INPUT_BYTES });
}

function reasonOf(e: unknown): string {
  return e instanceof FileReadError ? e.reason : (e as Error).message;
}

export const DEFAULT_REGISTRIES_FILE = "/etc/rkl/registries.yaml";

export function emptyRegistries(): RegistriesConfig {
  return { mirrors: {}, configs: {} };
}

/** Reads the file; an absent file is an empty config, a bad one an error at its line. */
export async function loadRegistries(file: string): Promise<RegistriesConfig> {
  let text: string;
  try {
    text = readConfigFile(file);
  } catch (e) {
    if (e instanceof FileReadError && e.notFound) return { ...emptyRegistries(), file };
    throw new SpecError({ file }, `Cannot read registries config: ${reasonOf(e)}`, { cause: e });
  }
  return await parseRegistries(text, file);
}

export async function parseRegistries(text: string, file: string): Promise<RegistriesConfig> {
  const { isMap, isScalar, isSeq, LineCounter, parseDocument } = await import("yaml");
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const at = (node: unknown) => {
    const r = (node as { range?: [number, number] } | undefined)?.range;
    const p = r ? lc.linePos(r[0]) : undefined;
    return { file, line: p?.line, column: p?.col };
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new SpecError(
      { file, line: e.linePos?.[0]?.line, column: e.linePos?.[0]?.col },
      e.message.split("\n")[0],
    );
  }
  const out: RegistriesConfig = { ...emptyRegistries(), file };
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return out;
  if (!isMap(root)) throw new SpecError(at(root), "registries config must be a mapping");
  const str = (n: unknown, what: string): string => {
    if (!isScalar(n) || typeof n.value !== "string" || n.value === "") {
      throw new SpecError(at(n), `${what} must be a non-empty string`);
    }
    return n.value;
  };
  const bool = (n: unknown, what: string): boolean => {
    if (!isScalar(n) || typeof n.value !== "boolean") {
      throw new SpecError(at(n), `${what} must be true or false`);
    }
    return n.value;
  };
  for (const pair of (root as YAMLMap).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    if (key !== "mirrors" && key !== "configs") {
      throw new SpecError(at(pair.key), `unknown key ${JSON.stringify(key)} (mirrors, configs)`);
    }
    if (!isMap(pair.value)) {
      throw new SpecError(at(pair.value ?? pair.key), `${key} must be a mapping`);
    }
    for (const entry of pair.value.items) {
      const host = str(entry.key, `${key} key`);
      const v = entry.value;
      if (!isMap(v)) throw new SpecError(at(v ?? entry.key), `${key}.${host} must be a mapping`);
      if (key === "mirrors") {
        const m = { endpoint: [] as string[], fallback: true };
        for (const f of v.items) {
          const fk = isScalar(f.key) ? String(f.key.value) : "";
          if (fk === "endpoint") {
            if (!isSeq(f.value)) {
              throw new SpecError(at(f.value ?? f.key), "endpoint must be a list of URLs");
            }
            for (const u of f.value.items) {
              const url = str(u, "endpoint").replace(/\/+$/, "");
              if (!/^https?:\/\/[^/\s]+$/.test(url)) {
                throw new SpecError(
                  at(u),
                  `endpoint ${JSON.stringify(url)} must be http(s)://host[:port]`,
                );
              }
              m.endpoint.push(url);
            }
          } else if (fk === "fallback") m.fallback = bool(f.value, "fallback");
          else if (fk === "rewrite") {
            throw new SpecError(at(f.key), "mirror rewrites are not supported");
          } else {throw new SpecError(
              at(f.key),
              `unknown key ${JSON.stringify(fk)} (endpoint, fallback)`,
            );}
        }
        out.mirrors[host] = m;
      } else {
        const c: { insecure: boolean; auth?: Credentials } = { insecure: false };
        for (const f of v.items) {
          const fk = isScalar(f.key) ? String(f.key.value) : "";
          if (fk === "insecure") c.insecure = bool(f.value, "insecure");
          else if (fk === "auth") {
            if (!isMap(f.value)) {
              throw new SpecError(at(f.value ?? f.key), "auth must be a mapping");
            }
            const a = f.value;
            c.auth = {
              username: str(a.get("username", true), "username"),
              password: str(a.get("password", true), "password"),
            };
          } else {throw new SpecError(
              at(f.key),
              `unknown key ${JSON.stringify(fk)} (insecure, auth)`,
            );}
        }
        out.configs[host] = c;
      }
    }
  }
  return out;
}

/** True for 127.0.0.0/8, ::1 and localhost (with any port). */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostPort.startsWith("[")
    ? hostPort.slice(1, hostPort.indexOf("]"))
    : hostPort.split(":")[0];
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Whether plain HTTP may be spoken to `host`. */
export function allowsHttp(cfg: RegistriesConfig, host: string): boolean {
  return isLoopbackHost(host) || cfg.configs[host]?.insecure === true;
}

/** The endpoints to try for `registry`, mirrors first. */
export function endpointsFor(cfg: RegistriesConfig, registry: string): Endpoint[] {
  const out: Endpoint[] = [];
  const m = cfg.mirrors[registry];
  for (const url of m?.endpoint ?? []) {
    const host = url.replace(/^https?:\/\//, "");
    out.push({ url, host, mirror: true, httpFallback: false });
  }
  if (!m || m.fallback) {
    const host = registry === DOCKER_HUB ? "registry-1.docker.io" : registry;
    out.push({
      url: `https://${host}`,
      host: registry,
      mirror: false,
      httpFallback: allowsHttp(cfg, registry),
    });
  }
  return out;
}

/** Credentials for `host`: the config's, then the auth file's. */
export function credentialsFor(
  cfg: RegistriesConfig,
  auths: Record<string, Credentials>,
  host: string,
): Credentials | undefined {
  return cfg.configs[host]?.auth ?? auths[host] ??
    (host === DOCKER_HUB || host === "registry-1.docker.io"
      ? auths[DOCKER_HUB] ?? auths["https://index.docker.io/v1/"] ?? auths["index.docker.io"]
      : undefined);
}

/** Where `rkl login` writes and pulls read: $REGISTRY_AUTH_FILE, else /etc/rkl/auth.json. */
export function authFilePath(): string {
  return Deno.env.get("REGISTRY_AUTH_FILE") || "/etc/rkl/auth.json";
}

/** The `auths` of a docker-style auth.json (missing file: none). */
/** `auth` of auth.json and the CRI's AuthConfig: base64 of "user:password" (UTF-8). */
export function decodeBasicAuth(b64: string): Credentials | undefined {
  let plain: string;
  try {
    plain = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const i = plain.indexOf(":");
  return i > 0 ? { username: plain.slice(0, i), password: plain.slice(i + 1) } : undefined;
}

export function readAuthFile(file: string): Record<string, Credentials> {
  let text: string;
  try {
    text = readConfigFile(file);
  } catch (e) {
    if (e instanceof FileReadError && e.notFound) return {};
    throw new SpecError({ file }, `Cannot read auth file: ${reasonOf(e)}`, { cause: e });
  }
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SpecError({ file }, `auth file is not JSON: ${(e as Error).message}`);
  }
  const out: Record<string, Credentials> = {};
  for (const [host, v] of Object.entries(doc?.auths ?? {})) {
    if (typeof v?.auth === "string" && v.auth !== "") {
      // An entry that is not base64 of "user:password" is skipped, as docker does.
      const c = decodeBasicAuth(v.auth);
      if (c) out[host.replace(/^https?:\/\//, "").replace(/\/.*$/, "")] = c;
    } else if (typeof v?.username === "string" && typeof v?.password === "string") {
      out[host] = { username: v.username, password: v.password };
    }
  }
  return out;
}

/** Adds or removes `host` in the auth file (0600, atomic). */
export function writeAuthEntry(
  file: string,
  host: string,
  creds: Credentials | undefined,
): boolean {
  let doc: { auths?: Record<string, unknown> } = {};
  try {
    doc = JSON.parse(readConfigFile(file));
  } catch (e) {
    if (!(e instanceof FileReadError && e.notFound)) {
      throw new SpecError({ file }, `Cannot read auth file: ${reasonOf(e)}`, { cause: e });
    }
  }
  doc.auths ??= {};
  const had = host in doc.auths;
  if (creds) {
    const bytes = new TextEncoder().encode(`${creds.username}:${creds.password}`);
    doc.auths[host] = { auth: btoa(String.fromCharCode(...bytes)) };
  } else delete doc.auths[host];
  Deno.mkdirSync(file.slice(0, file.lastIndexOf("/")) || "/", { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${Deno.pid}`;
  Deno.writeTextFileSync(tmp, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600 });
  Deno.chmodSync(tmp, 0o600);
  Deno.renameSync(tmp, file);
  return had;
}
