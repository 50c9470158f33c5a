/** A compose project to Kubernetes objects, service by service. */
import { SpecError } from "../../errors.ts";
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import { locate, parseYamlDocuments, type SourceDoc, type Warning } from "../../spec/source.ts";
import { MAX_INPUT_BYTES, readTextBounded } from "../../sys/readfile.ts";
import {
  type Converted,
  type ConvertOptions,
  dnsName,
  type Obj,
  type ServiceConversion,
} from "./common.ts";
import { convertContainer, waitInits, warnDropped } from "./container.ts";
import { convertMounts } from "./mounts.ts";
import { labelsOf, podObjects, workloadObjects } from "./objects.ts";

/** Where `services.NAME.KEY` is written (the last file that sets it). */
function locator(files: string[]): (svc: string, key: string[]) => SourceDoc | undefined {
  const docs: SourceDoc[] = [];
  for (const f of files) {
    try {
      docs.push(...parseYamlDocuments(readTextBounded(f, { max: MAX_INPUT_BYTES }), f));
    } catch { /* already loaded once; locations are a courtesy */ }
  }
  return (svc, key) =>
    [...docs].reverse().find((d) => d.doc.getIn(["services", svc, ...key], true) !== undefined);
}

export function convertProject(project: ComposeProject, options: ConvertOptions): Converted {
  const where = locator(project.files);
  const warnings: Warning[] = [];
  const warn = (svc: string, key: string[], message: string) => {
    const src = where(svc, key);
    const at = src ? locate(src, ["services", svc, ...key], { key: true }) : {};
    warnings.push({
      file: src?.file ?? project.files[0],
      ...at,
      path: ["services", svc, ...key].join("."),
      message,
    });
  };
  const fail = (svc: string, key: string[], message: string): never => {
    const src = where(svc, key);
    const at = src ? locate(src, ["services", svc, ...key], { key: true }) : {};
    throw new SpecError(
      { file: src?.file ?? project.files[0], ...at, path: ["services", svc, ...key].join(".") },
      message,
    );
  };
  const byName = new Map(project.services.map((s) => [s.name, s]));
  const out: Converted["services"] = [];
  for (const svc of project.services) {
    const has = (key: string[]) => where(svc.name, key) !== undefined;
    out.push({
      name: svc.name,
      docs: convertService(project, svc, byName, options, warn, fail, has),
    });
  }
  return { services: out, warnings };
}

/** The objects of one service: Pods (one per replica), or a Deployment, Service and claims. */
function convertService(
  project: ComposeProject,
  svc: ComposeService,
  byName: Map<string, ComposeService>,
  options: ConvertOptions,
  warn: (svc: string, key: string[], message: string) => void,
  fail: (svc: string, key: string[], message: string) => never,
  /** Whether the service's files set `key` (not a default of the loader). */
  has: (key: string[]) => boolean,
): Obj[] {
  const cv: ServiceConversion = { project, svc, byName, options, warn, fail };
  const s = svc.name;
  if (svc.networkMode === "none") {
    fail(
      s,
      ["network_mode"],
      "network_mode none has no Pod equivalent: drop it and run the converted pod with `rkl pod run --network none`",
    );
  }
  if (svc.networkMode === "service" || svc.networkMode === "container") {
    fail(
      s,
      ["network_mode"],
      `network_mode ${svc.networkMode}:${svc.networkTarget} has no Pod equivalent across pods: put both containers in one Pod (they share its network namespace)`,
    );
  }
  const { objects, volumes, mounts, claims } = convertMounts(cv);
  const container = convertContainer(cv, mounts);
  warnDropped(cv);
  const inits = waitInits(cv);
  const restartPolicy = { no: "Never", always: "Always", "on-failure": "OnFailure" }[
    svc.restart as "no"
  ] ?? "Always";
  const { labels, annotations } = labelsOf(cv);
  const podSpec = (hostname: string): Obj => ({
    ...(svc.networkMode === "host" ? { hostNetwork: true } : {}),
    ...(svc.hostname ? { hostname: dnsName(svc.hostname) } : { hostname }),
    ...(inits.length > 0 ? { initContainers: inits } : {}),
    containers: [container],
    restartPolicy: options.workloads ? "Always" : restartPolicy,
    terminationGracePeriodSeconds: svc.stopGraceSec,
    ...(volumes.length > 0 ? { volumes } : {}),
  });
  if (options.workloads) {
    // Compose's default is "no": only a policy the file sets is worth a word.
    const set = has(["restart"])
      ? ["restart"]
      : has(["deploy", "restart_policy"])
      ? ["deploy", "restart_policy"]
      : undefined;
    if (restartPolicy !== "Always" && set) {
      warn(s, set, "a Deployment's pods always restart; the restart policy is dropped");
    }
    return [...objects, ...workloadObjects(cv, { labels, annotations, claims, podSpec })];
  }
  return [...objects, ...podObjects(cv, { labels, annotations, podSpec })];
}
