/**
 * Image references, with Docker's short-name rules: a first component without
 * a dot or colon (and not `localhost`) is a path on Docker Hub, and a Hub
 * name of one component lives under `library/`.
 *
 *   busybox                    → docker.io/library/busybox:latest
 *   registry.k8s.io/pause:3.10 → registry.k8s.io/pause:3.10
 *   name@sha256:<64 hex>       → pinned by digest (a tag beside it is kept for display)
 */

export interface ImageRef {
  /** Registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  /** `sha256:<hex>` */
  digest?: string;
}

export class ReferenceError extends Error {
  override name = "ReferenceError";
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

export const DOCKER_HUB = "docker.io";

/** Parses and normalises `text`; throws ReferenceError with the reason. */
export function parseReference(text: string): ImageRef {
  const bad = (why: string): never => {
    throw new ReferenceError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
  };
  if (text === "" || text.length > 4096) bad("empty or too long");
  if (/\s/.test(text)) bad("it contains white space");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad("the digest must be sha256: and 64 lower-case hex digits");
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag ${JSON.stringify(tag)} is not valid`);
  }
  let registry = DOCKER_HUB;
  let path = rest;
  const first = rest.indexOf("/");
  if (first >= 0) {
    const head = rest.slice(0, first);
    if (head.includes(".") || head.includes(":") || head === "localhost") {
      registry = head;
      path = rest.slice(first + 1);
      if (!HOST.test(registry)) bad(`registry ${JSON.stringify(registry)} is not a host[:port]`);
    }
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = DOCKER_HUB;
  if (path === "") bad("no repository name");
  const parts = path.split("/");
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      bad(`path component ${JSON.stringify(p)} must be lower-case letters, digits and . _ -`);
    }
  }
  if (registry === DOCKER_HUB && parts.length === 1) path = `library/${path}`;
  if (path.length > 255) bad("repository name longer than 255 characters");
  if (!tag && !digest) tag = "latest";
  return { registry, repository: path, tag, digest };
}

/** `registry/repository` */
export function repoName(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The full form: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageRef): string {
  return repoName(ref) + (ref.tag ? `:${ref.tag}` : "") + (ref.digest ? `@${ref.digest}` : "");
}

/** `registry/repository:tag`, the name a tag record is kept under (undefined for digest-only). */
export function tagName(ref: ImageRef): string | undefined {
  return ref.tag ? `${repoName(ref)}:${ref.tag}` : undefined;
}

/** The spec's rule for an `image:` value, kept in spec/ (which imports nothing from image/). */
export { isBundlePath } from "../spec/paths.ts";

/** The Kubernetes default pull policy: Always for `:latest` or no tag, else IfNotPresent. */
export function defaultPullPolicy(text: string): "Always" | "IfNotPresent" {
  try {
    const ref = parseReference(text);
    if (ref.digest) return "IfNotPresent";
    return ref.tag === "latest" ? "Always" : "IfNotPresent";
  } catch {
    return "IfNotPresent";
  }
}
