/** Service settings checked on their own: security_opt, pull_policy, healthcheck, sysctls. */
import type { PathSegment } from "../source.ts";
import { joinPath } from "../paths.ts";
import type { Located } from "./located.ts";
import type { RawService } from "./schema.ts";
import type { ComposeHealthcheck, ComposeSecurityOpt } from "./types.ts";
import { parseDuration, sysctlAllowed } from "./values.ts";

/**
 * docker's `--security-opt` values: `KEY=VALUE` or `KEY:VALUE`. rkl applies
 * no SELinux labels and no AppArmor profiles, so `label=disable` and
 * `apparmor=unconfined` describe what it does; any other label or profile
 * is refused, as is every other key.
 */
export function securityOpts(
  L: Located,
  svc: string,
  raw: string[] | undefined,
  dir: string,
): ComposeSecurityOpt {
  const out: ComposeSecurityOpt = {};
  (raw ?? []).forEach((opt, i) => {
    const where: PathSegment[] = ["services", svc, "security_opt", i];
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(opt);
    const [key, value] = m ? [m[1], m[2]] : ["", undefined];
    if (key === "no-new-privileges" && (value === undefined || /^(true|false)$/.test(value))) {
      out.noNewPrivileges = value !== "false";
    } else if (key === "seccomp" && value) {
      out.seccomp = value === "unconfined"
        ? { type: "Unconfined" }
        : value === "builtin"
        ? { type: "RuntimeDefault" }
        : { type: "Localhost", file: joinPath(dir, value) };
    } else if (key === "systempaths" && value === "unconfined") {
      out.systemPathsUnconfined = true;
    } else if (key === "label" && (value === "disable" || value === "disabled")) {
      // rkl sets no SELinux labels: nothing to disable.
    } else if (key === "apparmor" && value === "unconfined") {
      // rkl loads no AppArmor profile: containers are unconfined already.
    } else if (key === "label" || key === "apparmor") {
      throw L.error(
        where,
        `security_opt ${JSON.stringify(opt)}: rkl applies no ${
          key === "label" ? "SELinux labels" : "AppArmor profiles"
        }; remove it (or use ${key}=${key === "label" ? "disable" : "unconfined"})`,
      );
    } else {
      throw L.error(
        where,
        `security_opt ${
          JSON.stringify(opt)
        } is not supported: use no-new-privileges, seccomp=unconfined|builtin|FILE, systempaths=unconfined, label=disable or apparmor=unconfined`,
      );
    }
  });
  return out;
}

/**
 * compose `pull_policy` → the Kubernetes policy rkl applies. `daily`,
 * `weekly` and `every_<duration>` pull when the image is missing (rkl keeps
 * no pull times); `build` needs a builder rkl does not have.
 */
export function composePullPolicy(
  L: Located,
  v: string | undefined,
  path: readonly PathSegment[],
): "Always" | "IfNotPresent" | "Never" | undefined {
  if (v === undefined) return undefined;
  if (v === "always") return "Always";
  if (v === "never") return "Never";
  if (
    v === "missing" || v === "if_not_present" || v === "daily" || v === "weekly" ||
    /^every_\w+$/.test(v)
  ) {
    return "IfNotPresent";
  }
  if (v === "build") {
    throw L.error(path, "pull_policy build is not supported (rkl does not build images)");
  }
  throw L.error(
    path,
    `pull_policy ${
      JSON.stringify(v)
    } must be always, never, missing, if_not_present, daily, weekly or every_<duration>`,
  );
}

export function healthcheck(
  L: Located,
  svc: string,
  h: RawService["healthcheck"],
): ComposeHealthcheck | undefined {
  if (!h || h.disable || h.test === undefined) return undefined;
  const where: PathSegment[] = ["services", svc, "healthcheck"];
  let test: string[];
  if (typeof h.test === "string") test = ["/bin/sh", "-c", h.test];
  else if (h.test[0] === "NONE") return undefined;
  else if (h.test[0] === "CMD") test = h.test.slice(1);
  else if (h.test[0] === "CMD-SHELL") test = ["/bin/sh", "-c", h.test.slice(1).join(" ")];
  else throw L.error([...where, "test"], 'test must start with "CMD", "CMD-SHELL" or "NONE"');
  if (test.length === 0) throw L.error([...where, "test"], "test has no command");
  const dur = (k: "interval" | "timeout" | "start_period" | "start_interval", def: number) => {
    try {
      return h[k] === undefined ? def : parseDuration(h[k]!);
    } catch (e) {
      throw L.error([...where, k], (e as Error).message);
    }
  };
  return {
    test,
    intervalMs: dur("interval", 30_000),
    timeoutMs: dur("timeout", 30_000),
    retries: h.retries ?? 3,
    startPeriodMs: dur("start_period", 0),
    startIntervalMs: dur("start_interval", 5_000),
  };
}

export function sysctlMap(
  L: Located,
  svc: string,
  raw: RawService["sysctls"],
  hostNetwork: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Array.isArray(raw)
    ? raw.map((kv) =>
      [
        kv.slice(0, kv.indexOf("=") < 0 ? kv.length : kv.indexOf("=")),
        kv.slice(kv.indexOf("=") + 1),
      ] as const
    )
    : Object.entries(raw ?? {}).map(([k, v]) => [k, String(v ?? "")] as const);
  for (const [k, v] of entries) {
    if (!/^[a-z0-9_.]+$/.test(k) || !sysctlAllowed(k, hostNetwork)) {
      throw L.error(
        ["services", svc, "sysctls"],
        `sysctl ${JSON.stringify(k)} is not one a container may set (net.*${
          hostNetwork ? " is not allowed with network_mode host" : ""
        }, kernel.shm*/msg*/sem, fs.mqueue.*)`,
      );
    }
    out[k] = v;
  }
  return out;
}
