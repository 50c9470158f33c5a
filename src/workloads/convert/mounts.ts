/** A service's mounts as Pod volumes; its configs and secrets as ConfigMaps and Secrets. */
import type { ComposeMount } from "../../spec/compose.ts";
import { dnsName, type Obj, type ServiceConversion } from "./common.ts";

/** Volumes and mounts; configs and secrets become ConfigMaps and Secrets (`objects`). */
export function convertMounts(cv: ServiceConversion) {
  const { project, svc, options } = cv;
  const objects: Obj[] = [];
  const volumes: Obj[] = [];
  const mounts: Obj[] = [];
  const claims: string[] = [];
  const addObject = (kind: "configs" | "secrets", m: ComposeMount, i: number) => {
    const def = project[kind].find((c) => c.name === m.source);
    const objName = dnsName(
      `${project.name}-${kind === "configs" ? "config" : "secret"}-${m.source}`,
    );
    const key = m.source.replace(/[^-._a-zA-Z0-9]/g, "_");
    const bytes = def?.file
      ? options.readFile(def.file)
      : new TextEncoder().encode(def?.content ?? "");
    if (!objects.some((o) => (o.metadata as Obj).name === objName)) {
      objects.push(
        kind === "configs"
          ? {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: objName },
            data: { [key]: new TextDecoder().decode(bytes) },
          }
          : {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: objName },
            type: "Opaque",
            data: { [key]: btoa(String.fromCharCode(...bytes)) },
          },
      );
    }
    const vol = `${kind === "configs" ? "config" : "secret"}-${i}`;
    volumes.push(
      kind === "configs"
        ? { name: vol, configMap: { name: objName, items: [{ key, path: key }] } }
        : {
          name: vol,
          secret: { secretName: objName, items: [{ key, path: key }], defaultMode: 0o400 },
        },
    );
    mounts.push({ name: vol, mountPath: m.target, subPath: key, readOnly: true });
  };
  svc.mounts.forEach((m, i) => {
    const vol = `vol-${i}`;
    switch (m.kind) {
      case "bind": {
        let type = "";
        try {
          options.fs.stat(m.source);
        } catch {
          if (m.createHostPath) type = "DirectoryOrCreate";
        }
        volumes.push({ name: vol, hostPath: { path: m.source, ...(type ? { type } : {}) } });
        break;
      }
      case "volume":
        if (options.workloads) {
          const claim = dnsName(`${project.name}-${m.source}`);
          claims.push(claim);
          volumes.push({ name: vol, persistentVolumeClaim: { claimName: claim } });
        } else {
          const pv = project.volumes.find((v) => v.name === m.source);
          const device = pv?.device;
          volumes.push({
            name: vol,
            hostPath: device ? { path: device, type: "Directory" } : {
              path: `${options.volumesDir}/${
                pv?.volumeName ?? `${project.name}_${m.source}`
              }/_data`,
              type: "DirectoryOrCreate",
            },
          });
        }
        break;
      case "anonymous":
        volumes.push({ name: vol, emptyDir: {} });
        break;
      case "tmpfs": {
        // A memory-backed emptyDir; its size, if any, is the limit.
        const size = m.options?.find((o) => o.startsWith("size="))?.slice(5);
        volumes.push({
          name: vol,
          emptyDir: { medium: "Memory", ...(size ? { sizeLimit: size } : {}) },
        });
        break;
      }
      default:
        addObject(m.kind === "config" ? "configs" : "secrets", m, i);
        return;
    }
    mounts.push({ name: vol, mountPath: m.target, ...(m.readOnly ? { readOnly: true } : {}) });
  });
  return { objects, volumes, mounts, claims };
}
