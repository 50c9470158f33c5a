/** volumeMounts resolved against the declared volumes, and the checks on volumes. */
import type { SourceLocation, SpecError } from "../errors.ts";
import { type PathSegment, type SourceDoc, specErrorAt } from "./source.ts";
import { VOLUME_SOURCES, type VolumeMountSpec, type VolumeSpec } from "./schema.ts";
import { joinPath } from "./paths.ts";
import { HOST_PATH_TYPES, type HostPathType, type ResolvedMount } from "./container_spec.ts";

/**
 * Resolves a container's volumeMounts against the declared volumes. Shared
 * by single containers and pods.
 */
export function resolveMounts(
  src: SourceDoc,
  mounts: VolumeMountSpec[],
  volumes: VolumeSpec[],
  options: {
    baseDir: string;
    pathPrefix: readonly PathSegment[];
    volumesPath: readonly PathSegment[];
    /** Pods take every volume source; a single container hostPath only. */
    pod?: boolean;
  },
): ResolvedMount[] {
  const out: ResolvedMount[] = [];
  const seen = new Set<string>();
  mounts.forEach((m, i) => {
    const at = [...options.pathPrefix, "volumeMounts", i];
    if (seen.has(m.mountPath)) {
      throw specErrorAt(
        src,
        [...at, "mountPath"],
        `${JSON.stringify(m.mountPath)} is mounted twice`,
      );
    }
    seen.add(m.mountPath);
    const readOnly = m.readOnly ?? false;
    let subPath: string | undefined;
    if (m.subPath !== undefined && m.subPath !== "") {
      const parts = m.subPath.split("/");
      if (m.subPath.startsWith("/") || parts.includes("..") || m.subPath.includes("\0")) {
        throw specErrorAt(src, [...at, "subPath"], "must be a relative path without '..'");
      }
      subPath = parts.filter((p) => p !== "" && p !== ".").join("/") || undefined;
    }
    const sub = subPath ? { subPath } : {};
    if (m.hostPath !== undefined) {
      out.push({
        source: joinPath(options.baseDir, m.hostPath),
        destination: m.mountPath,
        readOnly,
        kind: "hostPath",
        loc: locOf(src, [...at, "hostPath"]),
        ...sub,
      });
      return;
    }
    if (m.name === undefined) {
      throw specErrorAt(src, at, "a volume mount needs 'name' (a declared volume) or 'hostPath'");
    }
    const vol = volumes.find((v) => v.name === m.name);
    if (!vol) {
      throw specErrorAt(
        src,
        [...at, "name"],
        `volume ${JSON.stringify(m.name)} is not declared in ${
          options.volumesPath.map(String).join(".") || "volumes"
        }`,
      );
    }
    if (vol.hostPath) {
      const source = joinPath(options.baseDir, vol.hostPath.path);
      const vi = volumes.indexOf(vol);
      const type = vol.hostPath.type ?? "";
      if (!(HOST_PATH_TYPES as readonly string[]).includes(type)) {
        throw specErrorAt(
          src,
          [...options.volumesPath, vi, "hostPath", "type"],
          `hostPath type ${JSON.stringify(type)} must be one of ${
            HOST_PATH_TYPES.filter(Boolean).join(", ")
          } or ""`,
        );
      }
      out.push({
        source,
        destination: m.mountPath,
        readOnly,
        kind: "hostPath",
        hostPathType: type as HostPathType,
        // No type: the kubelet checks nothing and containerd's CRI (like docker's -v) makes a
        // missing source a directory (MkdirAll, 0755); the checked types still refuse.
        ...(type === "" ? { createMissingDir: true } : {}),
        loc: locOf(src, [...options.volumesPath, vi, "hostPath", "path"]),
        ...sub,
      });
    } else if (vol.persistentVolumeClaim) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: readOnly || (vol.persistentVolumeClaim.readOnly ?? false),
        kind: "claim",
        volume: vol.persistentVolumeClaim.claimName,
        ...sub,
      });
    } else if (vol.image) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      // Read-only and noexec always, as the kubelet mounts an image volume.
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: true,
        kind: "image",
        volume: vol.name,
        ...sub,
      });
    } else if (vol.configMap || vol.secret || vol.downwardAPI || vol.projected) {
      if (!options.pod) throw needsPod(src, options.volumesPath, volumes.indexOf(vol));
      // Read-only always, as the kubelet mounts them.
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly: true,
        kind: "files",
        volume: vol.name,
        ...sub,
      });
    } else {
      // A volume with no source is an emptyDir, as the API server defaults it.
      if (!vol.emptyDir && !options.pod) {
        throw specErrorAt(
          src,
          [...options.volumesPath, volumes.indexOf(vol)],
          "volume needs 'hostPath' (other volume types need a pod)",
        );
      }
      out.push({
        source: "",
        destination: m.mountPath,
        readOnly,
        kind: "emptyDir",
        volume: vol.name,
        ...sub,
      });
    }
  });
  return out;
}

function needsPod(src: SourceDoc, at: readonly PathSegment[], i: number): SpecError {
  return specErrorAt(
    src,
    [...at, i],
    "configMap, secret, downwardAPI, projected, persistentVolumeClaim and image volumes need a pod (rkl pod run); a single container takes hostPath",
  );
}

function locOf(src: SourceDoc, path: readonly PathSegment[]): SourceLocation & { path: string } {
  const e = specErrorAt(src, path, "");
  return { file: e.file, line: e.line, column: e.column, path: e.path };
}

export function checkUniqueVolumes(
  src: SourceDoc,
  volumes: VolumeSpec[],
  at: readonly PathSegment[],
): void {
  const names = new Set<string>();
  volumes.forEach((v, i) => {
    if (names.has(v.name)) {
      throw specErrorAt(
        src,
        [...at, i, "name"],
        `volume ${JSON.stringify(v.name)} is declared twice`,
      );
    }
    names.add(v.name);
  });
}

/**
 * Refuses volume types rkl cannot make (nfs, csi, …): validate() only warns
 * about unknown keys, and a volume left without its source would silently
 * become an emptyDir.
 */
export function checkVolumeSources(src: SourceDoc, at: readonly PathSegment[]): void {
  let list: unknown = src.value;
  for (const seg of at) list = (list as Record<string | number, unknown> | undefined)?.[seg];
  if (!Array.isArray(list)) return;
  list.forEach((v, i) => {
    if (v === null || typeof v !== "object") return;
    for (const k of Object.keys(v)) {
      if (k === "name" || VOLUME_SOURCES.includes(k)) continue;
      throw specErrorAt(
        src,
        [...at, i, k],
        `volume type ${JSON.stringify(k)} is not supported on a single host (use ${
          VOLUME_SOURCES.join(", ")
        })`,
        { key: true },
      );
    }
  });
}
