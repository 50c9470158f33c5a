/** A pod container's environment: envFrom and env, with ConfigMap, Secret and downward-API values. */
import type { EnvEntry } from "../container.ts";
import { fieldPathError, type NodeCapacity, resourceValue } from "../downward.ts";
import { type KubeObjects, whereToPut } from "../objects.ts";
import { type PathSegment, type SourceDoc, specErrorAt, type Warning } from "../source.ts";
import type { RawContainer } from "./schema.ts";

export interface LoadCtx {
  src: SourceDoc;
  objects: KubeObjects;
  node: NodeCapacity;
}

export function lookup(
  ctx: LoadCtx,
  kind: "ConfigMap" | "Secret",
  name: string,
  at: readonly PathSegment[],
  optional: boolean | undefined,
) {
  const o = (kind === "ConfigMap" ? ctx.objects.configMaps : ctx.objects.secrets).get(name);
  if (!o && !optional) {
    throw specErrorAt(
      ctx.src,
      at,
      `${kind} ${JSON.stringify(name)} is not defined (${whereToPut(kind)})`,
    );
  }
  return o;
}

function envText(ctx: LoadCtx, bytes: Uint8Array, at: readonly PathSegment[]): string {
  const text = new TextDecoder().decode(bytes);
  if (text.includes("\0")) {
    throw specErrorAt(ctx.src, at, "the value holds a NUL byte, which no environment can carry");
  }
  return text;
}

export function findContainer(
  ctx: LoadCtx,
  all: RawContainer[],
  name: string,
  at: readonly PathSegment[],
): RawContainer {
  const c = all.find((x) => x.name === name);
  if (!c) {
    throw specErrorAt(ctx.src, at, `no container ${JSON.stringify(name)} in this pod`);
  }
  return c;
}

/** envFrom then env, as the kubelet builds a container's environment. */
export function resolveEnv(
  ctx: LoadCtx,
  c: RawContainer,
  at: readonly PathSegment[],
  all: RawContainer[],
  warnings: Warning[],
): EnvEntry[] {
  const out: EnvEntry[] = [];
  (c.envFrom ?? []).forEach((f, i) => {
    const field = f.configMapRef ? "configMapRef" : "secretRef";
    const ref = f.configMapRef ?? f.secretRef!;
    const kind = f.configMapRef ? "ConfigMap" : "Secret";
    const o = lookup(ctx, kind, ref.name, [...at, "envFrom", i, field, "name"], ref.optional);
    if (!o) return;
    const prefix = f.prefix ?? "";
    if (prefix.includes("=") || prefix.includes("\0")) {
      throw specErrorAt(ctx.src, [...at, "envFrom", i, "prefix"], "must not contain '=' or NUL");
    }
    for (const [k, v] of o.data) {
      const value = new TextDecoder().decode(v);
      if (value.includes("\0")) {
        const loc = specErrorAt(ctx.src, [...at, "envFrom", i], "");
        warnings.push({
          file: loc.file,
          line: loc.line,
          column: loc.column,
          path: loc.path,
          message: `key ${JSON.stringify(k)} of ${kind} ${o.name} holds a NUL byte; skipped`,
        });
        continue;
      }
      out.push({ name: prefix + k, value });
    }
  });
  (c.env ?? []).forEach((e, i) => {
    const vf = e.valueFrom;
    if (!vf) {
      out.push({ name: e.name, value: e.value ?? "", expand: true });
      return;
    }
    const vat = [...at, "env", i, "valueFrom"];
    if (vf.configMapKeyRef || vf.secretKeyRef) {
      const field = vf.configMapKeyRef ? "configMapKeyRef" : "secretKeyRef";
      const kind = vf.configMapKeyRef ? "ConfigMap" : "Secret";
      const ref = vf.configMapKeyRef ?? vf.secretKeyRef!;
      const o = lookup(ctx, kind, ref.name, [...vat, field, "name"], ref.optional);
      if (!o) return;
      const v = o.data.get(ref.key);
      if (v === undefined) {
        if (ref.optional) return;
        throw specErrorAt(
          ctx.src,
          [...vat, field, "key"],
          `${kind} ${JSON.stringify(o.name)} (line ${o.loc.line}) has no key ${
            JSON.stringify(ref.key)
          }`,
        );
      }
      out.push({ name: e.name, value: envText(ctx, v, [...vat, field, "key"]) });
    } else if (vf.fieldRef) {
      const err = fieldPathError(vf.fieldRef.fieldPath, "env");
      if (err) throw specErrorAt(ctx.src, [...vat, "fieldRef", "fieldPath"], err);
      out.push({ name: e.name, fieldRef: vf.fieldRef.fieldPath });
    } else {
      const r = vf.resourceFieldRef!;
      const target = r.containerName
        ? findContainer(ctx, all, r.containerName, [...vat, "resourceFieldRef", "containerName"])
        : c;
      out.push({ name: e.name, value: resourceValue(r, target.resources ?? {}, ctx.node) });
    }
  });
  return out;
}
