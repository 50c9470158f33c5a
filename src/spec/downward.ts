/**
 * The downward API (a pod's own fields as env values or files) and
 * Kubernetes' `$(VAR)` references in env values, command and args. Pure:
 * the values a pod only gets at create (uid, IP) come in as {@linkcode PodInfo}.
 */
import type { ResourceFieldRefSpec, ResourcesSpec } from "./schema.ts";
import { parseQuantity, quantityMilli, quantityValue } from "./quantity.ts";

/** What the downward API can show of a pod. */
export interface PodInfo {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  nodeName: string;
  serviceAccountName: string;
  hostIP: string;
  podIP: string;
}

/** Not in downwardAPI volumes: they can change, and files are written once. */
const ENV_ONLY = new Set([
  "spec.nodeName",
  "spec.serviceAccountName",
  "status.hostIP",
  "status.hostIPs",
  "status.podIP",
  "status.podIPs",
]);
const SIMPLE = new Set(["metadata.name", "metadata.namespace", "metadata.uid", ...ENV_ONLY]);
const SUBSCRIPT = /^metadata\.(labels|annotations)\['([^']+)'\]$/;
/** Only in downwardAPI volumes, as in Kubernetes. */
const VOLUME_ONLY = new Set(["metadata.labels", "metadata.annotations"]);

/** Why `path` cannot be used here, or undefined when it can. */
export function fieldPathError(path: string, where: "env" | "volume"): string | undefined {
  const known = SIMPLE.has(path) || VOLUME_ONLY.has(path) || SUBSCRIPT.test(path);
  if (!known) {
    return `fieldPath ${
      JSON.stringify(path)
    } is not supported (use metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP or status.podIP)`;
  }
  if (where === "env" && VOLUME_ONLY.has(path)) {
    return `fieldPath ${
      JSON.stringify(path)
    } works in downwardAPI volumes only; in env, name one key: ${path}['KEY']`;
  }
  if (where === "volume" && ENV_ONLY.has(path)) {
    return `fieldPath ${JSON.stringify(path)} works in env only, not in downwardAPI volumes`;
  }
  return undefined;
}

/** `key="value"` lines, sorted, as the kubelet writes labels and annotations. */
function formatMap(m: Record<string, string>): string {
  return Object.keys(m).sort().map((k) => `${k}=${JSON.stringify(m[k])}`).join("\n");
}

export function fieldValue(path: string, info: PodInfo): string {
  const sub = SUBSCRIPT.exec(path);
  if (sub) return (sub[1] === "labels" ? info.labels : info.annotations)[sub[2]] ?? "";
  switch (path) {
    case "metadata.name":
      return info.name;
    case "metadata.namespace":
      return info.namespace;
    case "metadata.uid":
      return info.uid;
    case "metadata.labels":
      return formatMap(info.labels);
    case "metadata.annotations":
      return formatMap(info.annotations);
    case "spec.nodeName":
      return info.nodeName;
    case "spec.serviceAccountName":
      return info.serviceAccountName;
    case "status.hostIP":
    case "status.hostIPs":
      return info.hostIP;
    case "status.podIP":
    case "status.podIPs":
      return info.podIP;
  }
  throw new TypeError(`fieldPath ${path} was not checked`);
}

/** The node's capacity, used where a container sets no limit (as the kubelet does). */
export interface NodeCapacity {
  cpus: number;
  memoryBytes: number;
}

/** Value of a resourceFieldRef for a container with `resources`. */
export function resourceValue(
  ref: ResourceFieldRefSpec,
  resources: ResourcesSpec,
  node: NodeCapacity,
): string {
  const [kind, name] = ref.resource.split(".") as ["limits" | "requests", string];
  const raw = (resources[kind] as Record<string, string | number | undefined> | undefined)?.[name];
  const divisor = parseQuantity(ref.divisor ?? 1);
  if (name === "cpu") {
    let milli: bigint;
    if (raw !== undefined) milli = quantityMilli(parseQuantity(raw));
    else if (kind === "limits") milli = BigInt(node.cpus * 1000);
    else {milli = resources.limits?.cpu !== undefined
        ? quantityMilli(parseQuantity(resources.limits.cpu))
        : 0n;}
    const d = quantityMilli(divisor);
    return String(d === 0n ? 0n : (milli + d - 1n) / d);
  }
  let bytes: bigint;
  if (raw !== undefined) bytes = quantityValue(parseQuantity(raw));
  else if (kind === "limits") bytes = name === "memory" ? BigInt(node.memoryBytes) : 0n;
  else {
    const lim = (resources.limits as Record<string, string | number | undefined> | undefined)
      ?.[name];
    bytes = lim !== undefined ? quantityValue(parseQuantity(lim)) : 0n;
  }
  const d = quantityValue(divisor);
  return String(d === 0n ? 0n : (bytes + d - 1n) / d);
}

/**
 * Kubernetes' `$(VAR)` expansion: a defined VAR is replaced, an undefined one
 * stays as written, and `$$` is one `$` (so `$$(VAR)` is the literal text).
 */
export function expandRefs(s: string, vars: ReadonlyMap<string, string>): string {
  if (!s.includes("$")) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== "$" || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const next = s[i + 1];
    if (next === "$") {
      out += "$";
      i++;
    } else if (next === "(") {
      const end = s.indexOf(")", i + 2);
      if (end < 0) {
        out += s.slice(i);
        break;
      }
      const name = s.slice(i + 2, end);
      out += vars.has(name) ? vars.get(name)! : `$(${name})`;
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}
