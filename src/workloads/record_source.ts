/**
 * Which front end made a record, and what it keeps there for itself. The
 * core stores a source with the record and returns it as given: it reads
 * `kind` (where such a record may keep its log and cgroup) and `name` (for
 * listings), and never `meta`, which is the front end's own (the CRI keeps
 * its sandbox and container metadata there).
 */
export interface RecordSource {
  /** The front end: "cri" (the kubelet through the CRI), and so on. */
  kind: "cri" | "yaml" | "compose";
  /** How that front end names the object, for listings (the CRI: NAMESPACE/NAME). */
  name?: string;
  /** The front end's own data (JSON), opaque to the core. */
  meta?: Record<string, unknown>;
}

/**
 * A record's source: its `source`, or for a record written before sources
 * existed, the CRI metadata it kept in `cri` (the same data, as the CRI's
 * meta). Such records still load and list as before.
 */
export function recordSource(
  rec: { source?: RecordSource; cri?: unknown },
): RecordSource | undefined {
  if (rec.source) return rec.source;
  if (rec.cri === undefined || rec.cri === null || typeof rec.cri !== "object") return undefined;
  const meta = rec.cri as Record<string, unknown>;
  const ns = typeof meta.namespace === "string" ? `${meta.namespace}/` : "";
  const name = typeof meta.name === "string" ? `${ns}${meta.name}` : undefined;
  return { kind: "cri", ...(name !== undefined ? { name } : {}), meta };
}
