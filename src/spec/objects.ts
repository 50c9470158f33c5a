/**
 * The Kubernetes objects a standalone pod may lean on: ConfigMaps, Secrets
 * and PersistentVolumeClaims, read from the pod's own multi-document file
 * (as `podman kube play` does) or from files given with `--configmap`.
 * There is no API server: what a pod names must be in those files.
 */
import { lazy } from "../base/lazy.ts";
import * as z from "./zod.ts";
import { dnsLabel } from "./schema.ts";
import { type SourceDoc, specErrorAt, validate, type Warning } from "./source.ts";
import type { SourceLocation } from "../errors.ts";

/** ConfigMap and Secret keys (Kubernetes: `[-._a-zA-Z0-9]+`, at most 253). */
const KEY = /^[-._a-zA-Z0-9]{1,253}$/;

const key = z.string().refine((k) => KEY.test(k) && k !== "." && k !== "..", {
  message: "keys are letters, digits, '-', '_' and '.' (at most 253)",
});

const base64 = z.string().refine((v) => /^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v), {
  message: "must be base64",
});

const metadata = z.strictObject({
  name: dnsLabel.or(z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/).max(253)),
  namespace: dnsLabel.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

// Schemas are built on first use (lazy): a file without this kind never pays for building them.
const configMapSchema = lazy(() =>
  z.strictObject({
    apiVersion: z.literal("v1"),
    kind: z.literal("ConfigMap"),
    metadata,
    data: z.record(
      key,
      z.string({ message: "values must be strings (quote numbers and booleans)" }),
    )
      .optional(),
    binaryData: z.record(key, base64).optional(),
    immutable: z.boolean().optional(),
  })
);

const secretSchema = lazy(() =>
  z.strictObject({
    apiVersion: z.literal("v1"),
    kind: z.literal("Secret"),
    metadata,
    type: z.string().optional(),
    data: z.record(key, base64).optional(),
    stringData: z.record(
      key,
      z.string({ message: "values must be strings (quote numbers and booleans)" }),
    )
      .optional(),
    immutable: z.boolean().optional(),
  })
);

const claimSchema = lazy(() =>
  z.strictObject({
    apiVersion: z.literal("v1"),
    kind: z.literal("PersistentVolumeClaim"),
    metadata,
    spec: z.record(z.string(), z.unknown()).optional(),
  })
);

/** One ConfigMap or Secret: its keys and their bytes. */
export interface KubeObject {
  name: string;
  data: Map<string, Uint8Array>;
  loc: SourceLocation;
}

export interface KubeObjects {
  configMaps: Map<string, KubeObject>;
  secrets: Map<string, KubeObject>;
  /** PersistentVolumeClaims declared in the files (a claim need not be declared). */
  claims: Set<string>;
}

export function emptyObjects(): KubeObjects {
  return { configMaps: new Map(), secrets: new Map(), claims: new Set() };
}

/** The kinds this module reads; a Pod file may carry them next to its pods. */
export const OBJECT_KINDS = ["ConfigMap", "Secret", "PersistentVolumeClaim"];

/** metadata fields only the API server writes (`kubectl get -o yaml` shows them). */
export const SERVER_SET = new Set([
  "creationTimestamp",
  "uid",
  "resourceVersion",
  "generation",
  "managedFields",
  "selfLink",
]);

function decode64(s: string): Uint8Array {
  const bin = atob(s.replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Adds the document's object to `into`; returns its warnings. */
export function addObject(src: SourceDoc, into: KubeObjects): Warning[] {
  const kind = (src.value as { kind?: unknown }).kind;
  const schema = kind === "ConfigMap"
    ? configMapSchema()
    : kind === "Secret"
    ? secretSchema()
    : claimSchema();
  const { data, warnings } = validate(src, schema as ReturnType<typeof configMapSchema>, {
    silent: (k, path) =>
      (path.length === 0 && k === "status") ||
      (path.length === 1 && path[0] === "metadata" && SERVER_SET.has(k)),
  });
  const name = data.metadata.name;
  const nameLoc = specErrorAt(src, ["metadata", "name"], "");
  const loc = { file: nameLoc.file, line: nameLoc.line, column: nameLoc.column };
  if (kind === "PersistentVolumeClaim") {
    into.claims.add(name);
    return warnings;
  }
  const map = kind === "ConfigMap" ? into.configMaps : into.secrets;
  if (map.has(name)) {
    throw specErrorAt(
      src,
      ["metadata", "name"],
      `${kind} ${JSON.stringify(name)} is already defined at ${map.get(name)!.loc.file}:${
        map.get(name)!.loc.line
      }`,
    );
  }
  const entries = new Map<string, Uint8Array>();
  const enc = new TextEncoder();
  const put = (k: string, v: Uint8Array, field: string) => {
    if (entries.has(k)) {
      throw specErrorAt(src, [field, k], `key ${JSON.stringify(k)} is set twice`, { key: true });
    }
    entries.set(k, v);
  };
  if (kind === "ConfigMap") {
    const cm = data as z.output<ReturnType<typeof configMapSchema>>;
    for (const [k, v] of Object.entries(cm.data ?? {})) put(k, enc.encode(v), "data");
    for (const [k, v] of Object.entries(cm.binaryData ?? {})) put(k, decode64(v), "binaryData");
  } else {
    const s = data as unknown as z.output<ReturnType<typeof secretSchema>>;
    for (const [k, v] of Object.entries(s.data ?? {})) put(k, decode64(v), "data");
    // stringData wins over data, as the API server merges them.
    for (const [k, v] of Object.entries(s.stringData ?? {})) entries.set(k, enc.encode(v));
  }
  map.set(name, { name, data: entries, loc });
  return warnings;
}

/** "add a `kind: ConfigMap` document to the file, or pass --configmap FILE" */
export function whereToPut(kind: "ConfigMap" | "Secret"): string {
  return `add a kind: ${kind} document to the file, or pass --configmap FILE`;
}
