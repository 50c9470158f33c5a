/**
 * A client of the OCI distribution API v2: manifests and blobs, with the
 * anonymous (or basic-credentialed) bearer-token flow a `401` with a
 * `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge asks for,
 * and plain basic auth where the challenge is `Basic`.
 *
 * Every request is bounded in time: connecting and receiving headers by
 * `timeoutMs`, a body by the same time without a byte arriving.
 */
import { ImageError } from "../errors.ts";
import type { Credentials, Endpoint } from "./registries.ts";
import { concat } from "../bytes.ts";

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

/** A token answer is read into memory: 1 MiB at most (containers/image: MaxAuthTokenBodySize). */
const MAX_TOKEN_BODY = 1 << 20;

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…"` (quoted or bare values). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2])) !== null) params[p[1].toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: m[1].toLowerCase(), params };
}

export interface ClientOptions {
  timeoutMs: number;
  credentials(host: string): Credentials | undefined;
}

function basic(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.username}:${c.password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/** An error that another endpoint may not have (connection refused, 404, 5xx). */
export class EndpointError extends ImageError {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export class RegistryClient {
  #tokens = new Map<string, string>();
  /** Endpoints for which https failed and http is allowed: spoken to in http. */
  #plain = new Set<string>();
  constructor(private opts: ClientOptions) {}

  #base(ep: Endpoint): string {
    return this.#plain.has(ep.url) ? ep.url.replace(/^https:/, "http:") : ep.url;
  }

  async #fetch(url: string, init: RequestInit, what: string): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (e) {
      const err = e as Error;
      const why = err.name === "TimeoutError"
        ? `no answer within ${this.opts.timeoutMs / 1000} s`
        : err.message.split("\n")[0];
      throw new EndpointError(`${what}: ${why}`);
    }
  }

  async #token(ep: Endpoint, ch: Challenge, scope: string): Promise<string> {
    const realm = ch.params.realm;
    if (!realm || !/^https?:\/\//.test(realm)) {
      throw new EndpointError(
        `${ep.url}: the registry's token realm ${JSON.stringify(realm)} is not a URL`,
      );
    }
    const u = new URL(realm);
    if (ch.params.service) u.searchParams.set("service", ch.params.service);
    u.searchParams.set("scope", ch.params.scope || scope);
    const creds = this.opts.credentials(ep.host);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = basic(creds);
    const res = await this.#fetch(u.toString(), { headers }, `token from ${u.origin}`);
    if (!res.ok) {
      await res.body?.cancel();
      throw new EndpointError(
        `${ep.host}: the token service refused (${res.status}${
          creds ? ", check the credentials" : ""
        })`,
        res.status === 401 || res.status === 403 ? 401 : res.status,
      );
    }
    let body: { token?: string; access_token?: string } = {};
    try {
      body = JSON.parse(await this.#text(res, MAX_TOKEN_BODY, `token from ${u.origin}`));
    } catch (e) {
      if (e instanceof ImageError) throw e;
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new EndpointError(`${ep.host}: the token service answered no token`);
    return token;
  }

  /**
   * GET `path` (e.g. `/v2/library/busybox/manifests/1.36`) with auth handled.
   * `repo` scopes the token. Answers the response whatever its status after auth.
   */
  async get(
    ep: Endpoint,
    repo: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const scope = `repository:${repo}:pull`;
    const key = `${ep.url} ${scope}`;
    const send = async (auth?: string): Promise<Response> => {
      const h = { ...headers };
      if (auth) h.authorization = auth;
      const url = `${this.#base(ep)}${path}`;
      try {
        return await this.#fetch(url, { headers: h, redirect: "follow" }, ep.url);
      } catch (e) {
        if (ep.httpFallback && !this.#plain.has(ep.url) && url.startsWith("https:")) {
          this.#plain.add(ep.url);
          return await this.#fetch(
            `${this.#base(ep)}${path}`,
            { headers: h, redirect: "follow" },
            ep.url,
          );
        }
        throw e;
      }
    };
    const cached = this.#tokens.get(key);
    let res = await send(cached);
    if (res.status !== 401) return res;
    const ch = parseChallenge(res.headers.get("www-authenticate") ?? "");
    await res.body?.cancel();
    let auth: string | undefined;
    if (ch?.scheme === "bearer") auth = `Bearer ${await this.#token(ep, ch, scope)}`;
    else if (ch?.scheme === "basic") {
      const creds = this.opts.credentials(ep.host);
      if (!creds) {
        throw new EndpointError(
          `${ep.host}: the registry asks for credentials (rkl login ${ep.host})`,
          401,
        );
      }
      auth = basic(creds);
    } else {throw new EndpointError(
        `${ep.host}: unauthorized, and no challenge rkl understands`,
        401,
      );}
    this.#tokens.set(key, auth);
    res = await send(auth);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new EndpointError(`${ep.host}: access to ${repo} denied (${res.status})`, 401);
    }
    return res;
  }

  /** A small body as text, at most `max` bytes (EndpointError beyond: containers/image's ReadAtMost). */
  async #text(res: Response, max: number, what: string): Promise<string> {
    if (Number(res.headers.get("content-length") ?? "0") > max) {
      await res.body?.cancel();
      throw new EndpointError(`${what}: the answer is larger than ${max} bytes`);
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const c of this.chunks(res, what)) {
      total += c.length;
      if (total > max) throw new EndpointError(`${what}: the answer is larger than ${max} bytes`);
      parts.push(c);
    }
    return new TextDecoder().decode(concat(parts));
  }

  /** `GET /v2/` with auth: for `rkl login` to check credentials. */
  async ping(ep: Endpoint): Promise<void> {
    const res = await this.get(ep, "", "/v2/");
    await res.body?.cancel();
    if (!res.ok) throw new EndpointError(`${ep.host}: /v2/ answered ${res.status}`, res.status);
  }

  /** Reads a body, failing when no byte arrives for `timeoutMs`. */
  async *chunks(res: Response, what: string): AsyncGenerator<Uint8Array> {
    if (!res.body) return;
    const reader = res.body.getReader();
    try {
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new EndpointError(`${what}: no data for ${this.opts.timeoutMs / 1000} s`)),
            this.opts.timeoutMs,
          );
        });
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await Promise.race([reader.read(), idle]);
        } catch (e) {
          if (e instanceof EndpointError) throw e;
          throw new EndpointError(`${what}: ${(e as Error).message.split("\n")[0]}`);
        } finally {
          clearTimeout(timer);
        }
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
}
