/** Pod and container fields the schema reads but rkl refuses (or warns about) at their line. */
import type * as z from "../zod.ts";
import { locate, type PathSegment, type SourceDoc, specErrorAt, type Warning } from "../source.ts";
import type { podSchema, RawContainer } from "./schema.ts";

/** Pod-level resources the API server accepts (PodLevelResources): cpu, memory, hugepages-<size>. */
const POD_LEVEL_RESOURCE = /^(cpu|memory|hugepages-.+)$/;

/**
 * What the API server refuses when a pod is created, refused here at its line
 * rather than warned about and dropped: `spec.ephemeralContainers` (added to a
 * running pod only through its ephemeralcontainers subresource, `kubectl debug`)
 * and pod-level resources other than cpu, memory and hugepages.
 */
export function refuseAtCreate(src: SourceDoc): void {
  const spec = (src.value as Record<string, unknown>).spec;
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) return;
  const s = spec as Record<string, unknown>;
  if ("ephemeralContainers" in s) {
    throw specErrorAt(
      src,
      ["spec", "ephemeralContainers"],
      "ephemeral containers cannot be set when a pod is created (the API server refuses them too); " +
        "remove them; use `rkl pod exec` or add a container to the pod instead",
      { key: true },
    );
  }
  const res = s.resources;
  if (res === null || typeof res !== "object" || Array.isArray(res)) return;
  for (const kind of ["limits", "requests"]) {
    const list = (res as Record<string, unknown>)[kind];
    if (list === null || typeof list !== "object" || Array.isArray(list)) continue;
    for (const name of Object.keys(list)) {
      if (POD_LEVEL_RESOURCE.test(name)) continue;
      throw specErrorAt(
        src,
        ["spec", "resources", kind, name],
        `pod-level resources may only be cpu, memory and hugepages-<size> (the API server refuses ${
          JSON.stringify(name)
        }); set it on a container instead`,
        { key: true },
      );
    }
  }
}

/** A refusal at `path` (a key), with what to do instead. */
function refuse(src: SourceDoc, path: PathSegment[], message: string): never {
  throw specErrorAt(src, path, message, { key: true });
}

/**
 * PodSpec fields rkl reads but cannot do on one host: refused at their line
 * with what to do instead (or, for two that change nothing here but a
 * cluster's plumbing, a warning naming what rkl uses).
 */
export function refusePodFields(
  src: SourceDoc,
  s: z.output<typeof podSchema>["spec"],
  warnings: Warning[],
): void {
  const at = (k: string) => ["spec", k];
  if (s.activeDeadlineSeconds !== undefined) {
    refuse(
      src,
      at("activeDeadlineSeconds"),
      "not enforced on a pod: run it as a Job (kind: Job) with spec.activeDeadlineSeconds, which rkl enforces",
    );
  }
  if (s.os && s.os.name !== "linux") {
    throw specErrorAt(
      src,
      ["spec", "os", "name"],
      `this host runs linux pods, not ${JSON.stringify(s.os.name)}`,
    );
  }
  if (s.hostUsers === false) {
    refuse(src, at("hostUsers"), "user namespaces are not supported: remove hostUsers: false");
  }
  if (s.setHostnameAsFQDN) {
    refuse(
      src,
      at("setHostnameAsFQDN"),
      "not supported (no cluster domain here): write the name you want in hostnameOverride",
    );
  }
  if ((s.resourceClaims ?? []).length > 0) {
    refuse(
      src,
      at("resourceClaims"),
      "dynamic resource claims need a DRA driver, which one host has none of: remove them",
    );
  }
  if (s.hostNetwork && s.hostnameOverride) {
    refuse(
      src,
      at("hostnameOverride"),
      "cannot be set with hostNetwork (the API server's rule): the pod has the host's name",
    );
  }
  const sc = s.securityContext;
  // supplementalGroupsPolicy: rkl gives the process fsGroup and supplementalGroups and never
  // adds the image's /etc/group memberships, which is what Strict asks; Merge is read the same
  // (docs/kube.md).
  if (sc?.appArmorProfile?.type === "Localhost") {
    throw specErrorAt(
      src,
      ["spec", "securityContext", "appArmorProfile", "type"],
      "rkl loads no AppArmor profile: use RuntimeDefault or Unconfined",
    );
  }
  const note = (k: string, message: string) =>
    warnings.push({ file: src.file, ...locate(src, at(k)), path: `spec.${k}`, message });
  if (s.imagePullSecrets) {
    note("imagePullSecrets", "ignored: rkl pulls with the credentials `rkl login` stored");
  }
  if (s.runtimeClassName) {
    note("runtimeClassName", "ignored: every pod runs with rkl's --runtime (RKL_RUNTIME)");
  }
}

/** Container fields rkl reads but cannot do: refused at their line with what to do instead. */
export function refuseContainerFields(
  src: SourceDoc,
  c: RawContainer,
  at: readonly PathSegment[],
): void {
  if (c.volumeDevices) {
    refuse(
      src,
      [...at, "volumeDevices"],
      "raw block devices are not supported: mount the claim with volumeMounts",
    );
  }
  if ((c.resources?.claims ?? []).length > 0) {
    refuse(
      src,
      [...at, "resources", "claims"],
      "dynamic resource claims need a DRA driver: remove them",
    );
  }
  const sc = c.securityContext;
  if (sc?.procMount === "Unmasked") {
    refuse(
      src,
      [...at, "securityContext", "procMount"],
      "Unmasked needs a user namespace, which rkl does not make: remove it",
    );
  }
  if (sc?.appArmorProfile?.type === "Localhost") {
    throw specErrorAt(
      src,
      [...at, "securityContext", "appArmorProfile", "type"],
      "rkl loads no AppArmor profile: use RuntimeDefault or Unconfined",
    );
  }
  (c.env ?? []).forEach((e, i) => {
    if (e.valueFrom?.fileKeyRef) {
      refuse(
        src,
        [...at, "env", i, "valueFrom", "fileKeyRef"],
        "not supported: read the file from the process, or use a ConfigMap key",
      );
    }
  });
  (c.volumeMounts ?? []).forEach((m, i) => {
    const mat = [...at, "volumeMounts", i];
    if (m.subPathExpr !== undefined) {
      refuse(src, [...mat, "subPathExpr"], "not supported: use subPath with the path written out");
    }
    if (m.mountPropagation && m.mountPropagation !== "None") {
      refuse(src, [...mat, "mountPropagation"], "mounts are private here (None): remove it");
    }
    if (m.recursiveReadOnly === "Enabled") {
      refuse(
        src,
        [...mat, "recursiveReadOnly"],
        "not supported: use IfPossible or readOnly (submounts stay writable)",
      );
    }
  });
}
