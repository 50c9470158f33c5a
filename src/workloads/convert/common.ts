/** What every step of `compose convert` shares: options, the service at hand, name rules. */
import type { ComposeProject, ComposeService } from "../../spec/compose.ts";
import type { Warning } from "../../spec/source.ts";
import type { HostFs } from "../../sys/fs.ts";

export interface ConvertOptions {
  /** Where named volumes live (ROOT/volumes), so pods and compose share their data. */
  volumesDir: string;
  /** Deployment + Service + PVC instead of Pods. */
  workloads?: boolean;
  /** Reads a config/secret file (absolute path). */
  readFile(path: string): Uint8Array;
  /** The host's files: whether a bind mount's source exists. */
  fs: Pick<HostFs, "stat">;
}

export interface Converted {
  /** Per service: its objects, in apply order (ConfigMaps/Secrets first). */
  services: { name: string; docs: Record<string, unknown>[] }[];
  warnings: Warning[];
}

export type Obj = Record<string, unknown>;

/** What a service converts with: its project, every service by name, the options, where to warn or fail. */
export interface ServiceConversion {
  project: ComposeProject;
  svc: ComposeService;
  byName: Map<string, ComposeService>;
  options: ConvertOptions;
  warn: (svc: string, key: string[], message: string) => void;
  fail: (svc: string, key: string[], message: string) => never;
}

export const dnsName = (s: string) =>
  s.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(
    /-+$/,
    "",
  ) || "x";

export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
export const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Kubernetes expands `$(VAR)` and reads `$$` as `$`; compose values mean what they say. */
export const literal = (s: string) => s.split("$").join("$$");

export const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
