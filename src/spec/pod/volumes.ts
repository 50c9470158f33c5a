/** A pod's volumes: the files of configMap, secret, downwardAPI and projected volumes; memory emptyDirs. */
import { fieldPathError, resourceValue } from "../downward.ts";
import { parseQuantity, quantityValue } from "../quantity.ts";
import type { VolumeSpec } from "../schema.ts";
import {
  locate,
  type PathSegment,
  scalarSource,
  type SourceDoc,
  specErrorAt,
  type Warning,
} from "../source.ts";
import { findContainer, type LoadCtx, lookup } from "./env.ts";
import type { RawContainer } from "./schema.ts";
import type { VolumeFile } from "./types.ts";

/** A mode as kubectl reads it: `0644` is octal (YAML 1.1), `420` decimal. */
function readMode(ctx: LoadCtx, path: readonly PathSegment[], value: number): number {
  const text = scalarSource(ctx.src, path);
  const mode = text && /^0[0-7]+$/.test(text) ? parseInt(text, 8) : value;
  if (mode > 0o777) {
    throw specErrorAt(
      ctx.src,
      path,
      `mode ${
        text ?? value
      } is not a file mode: write it in octal with a leading 0 (0644) or in decimal (420)`,
    );
  }
  return mode;
}

/** The files of a configMap, secret, downwardAPI or projected volume. */
export function volumeFiles(
  ctx: LoadCtx,
  vol: VolumeSpec,
  vi: number,
  all: RawContainer[],
): VolumeFile[] {
  const at: PathSegment[] = ["spec", "volumes", vi];
  const files: VolumeFile[] = [];
  const seen = new Map<string, string>();
  const add = (f: VolumeFile, where: readonly PathSegment[]) => {
    const parts = f.path.split("/");
    if (f.path.startsWith("/") || parts.includes("..") || f.path.includes("\0")) {
      throw specErrorAt(ctx.src, where, "must be a relative path without '..'");
    }
    const clean = parts.filter((p) => p !== "" && p !== ".").join("/");
    if (!clean || clean.startsWith("..")) {
      throw specErrorAt(ctx.src, where, `${JSON.stringify(f.path)} is not a file name`);
    }
    if (seen.has(clean)) {
      throw specErrorAt(ctx.src, where, `${clean} is also written by ${seen.get(clean)}`);
    }
    seen.set(clean, where.map(String).join("."));
    files.push({ ...f, path: clean });
  };
  const b64 = (v: Uint8Array) => btoa(String.fromCharCode(...v));
  const fromObject = (
    kind: "ConfigMap" | "Secret",
    ref: {
      name: string;
      items?: { key: string; path: string; mode?: number }[];
      optional?: boolean;
    },
    defaultMode: number,
    where: PathSegment[],
    nameField: string,
  ) => {
    const o = lookup(ctx, kind, ref.name, [...where, nameField], ref.optional);
    if (!o) return;
    if (!ref.items) {
      for (const [k, v] of o.data) add({ path: k, data: b64(v), mode: defaultMode }, where);
      return;
    }
    ref.items.forEach((it, j) => {
      const iat = [...where, "items", j];
      const v = o.data.get(it.key);
      if (v === undefined) {
        if (ref.optional) return;
        throw specErrorAt(
          ctx.src,
          [...iat, "key"],
          `${kind} ${JSON.stringify(o.name)} (line ${o.loc.line}) has no key ${
            JSON.stringify(it.key)
          }`,
        );
      }
      const mode = it.mode === undefined ? defaultMode : readMode(ctx, [...iat, "mode"], it.mode);
      add({ path: it.path, data: b64(v), mode }, [...iat, "path"]);
    });
  };
  const fromDownward = (
    items: NonNullable<NonNullable<VolumeSpec["downwardAPI"]>["items"]>,
    defaultMode: number,
    where: PathSegment[],
  ) =>
    items.forEach((it, j) => {
      const iat = [...where, "items", j];
      const mode = it.mode === undefined ? defaultMode : readMode(ctx, [...iat, "mode"], it.mode);
      if (it.fieldRef) {
        const err = fieldPathError(it.fieldRef.fieldPath, "volume");
        if (err) throw specErrorAt(ctx.src, [...iat, "fieldRef", "fieldPath"], err);
        add({ path: it.path, fieldRef: it.fieldRef.fieldPath, mode }, [...iat, "path"]);
        return;
      }
      const r = it.resourceFieldRef!;
      if (!r.containerName) {
        throw specErrorAt(
          ctx.src,
          [...iat, "resourceFieldRef"],
          "resourceFieldRef in a volume needs containerName",
        );
      }
      const c = findContainer(ctx, all, r.containerName, [
        ...iat,
        "resourceFieldRef",
        "containerName",
      ]);
      const value = resourceValue(r, c.resources ?? {}, ctx.node);
      add({ path: it.path, data: btoa(value), mode }, [...iat, "path"]);
    });
  const dm = (v: { defaultMode?: number }, field: string) =>
    v.defaultMode === undefined
      ? 0o644
      : readMode(ctx, [...at, field, "defaultMode"], v.defaultMode);
  if (vol.configMap) {
    fromObject(
      "ConfigMap",
      vol.configMap,
      dm(vol.configMap, "configMap"),
      [...at, "configMap"],
      "name",
    );
  } else if (vol.secret) {
    fromObject(
      "Secret",
      { ...vol.secret, name: vol.secret.secretName },
      dm(vol.secret, "secret"),
      [...at, "secret"],
      "secretName",
    );
  } else if (vol.downwardAPI) {
    fromDownward(vol.downwardAPI.items ?? [], dm(vol.downwardAPI, "downwardAPI"), [
      ...at,
      "downwardAPI",
    ]);
  } else if (vol.projected) {
    const mode = dm(vol.projected, "projected");
    vol.projected.sources.forEach((p, j) => {
      const pat: PathSegment[] = [...at, "projected", "sources", j];
      if (p.configMap) fromObject("ConfigMap", p.configMap, mode, [...pat, "configMap"], "name");
      else if (p.secret) fromObject("Secret", p.secret, mode, [...pat, "secret"], "name");
      else if (p.downwardAPI) {
        fromDownward(p.downwardAPI.items ?? [], mode, [...pat, "downwardAPI"]);
      } else if (p.serviceAccountToken || p.clusterTrustBundle) {
        throw specErrorAt(
          ctx.src,
          [...pat, p.serviceAccountToken ? "serviceAccountToken" : "clusterTrustBundle"],
          "needs a Kubernetes API server, which a standalone pod has none of: drop this source (or mount the data from a Secret)",
        );
      } else {
        throw specErrorAt(
          ctx.src,
          pat,
          "a projected source needs configMap, secret or downwardAPI",
        );
      }
    });
  }
  return files;
}

/**
 * `emptyDir.medium: Memory` volumes in use, with their sizeLimit in bytes. A
 * sizeLimit on a disk emptyDir is not enforced here (the kubelet evicts the pod
 * past it): a warning at its line says so.
 */
export function memoryDirs(
  src: SourceDoc,
  volumes: VolumeSpec[],
  used: Set<string>,
  warnings: Warning[],
): Record<string, number | undefined> | undefined {
  const out: Record<string, number | undefined> = {};
  volumes.forEach((v, i) => {
    if (!v.emptyDir || !used.has(v.name)) return;
    const limit = v.emptyDir.sizeLimit;
    const bytes = limit === undefined ? undefined : Number(quantityValue(parseQuantity(limit)));
    if (v.emptyDir.medium === "Memory") {
      out[v.name] = bytes && bytes > 0 ? bytes : undefined;
    } else if (bytes) {
      const path = ["spec", "volumes", i, "emptyDir", "sizeLimit"];
      warnings.push({
        file: src.file,
        ...locate(src, path),
        path: `spec.volumes[${i}].emptyDir.sizeLimit`,
        message:
          "not enforced on a disk emptyDir (the kubelet evicts the pod past it); medium: Memory makes it a tmpfs of that size",
      });
    }
  });
  return Object.keys(out).length > 0 ? out : undefined;
}
