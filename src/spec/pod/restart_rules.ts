/**
 * A container's own restartPolicy and restartPolicyRules (Kubernetes 1.34,
 * ContainerRestartRules): read, checked as the API server checks them, and
 * the rule that decides whether an exited init container runs again.
 *
 * The API's rules: each rule's `action` is `Restart`; `exitCodes.operator` is
 * `In` or `NotIn` over at most 255 `values`; at most 20 rules; a container with
 * rules sets its `restartPolicy` explicitly. The rules are read in order, the
 * first one that matches the exit code decides, and with none matching the
 * container's restartPolicy does.
 */
import { type PathSegment, type SourceDoc, specErrorAt } from "../source.ts";

export interface RestartRule {
  operator: "In" | "NotIn";
  values: number[];
}

/** An init container's own restart rule: its policy (`Never`, `OnFailure`) and its rules. */
export interface InitRestart {
  policy: "Never" | "OnFailure";
  rules: RestartRule[];
}

const MAX_RULES = 20;
const MAX_VALUES = 255;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Reads `restartPolicyRules` at `at` (a container); throws at the offending line. */
export function readRestartRules(
  src: SourceDoc,
  raw: unknown[],
  at: readonly PathSegment[],
): RestartRule[] {
  const here = [...at, "restartPolicyRules"];
  if (raw.length > MAX_RULES) {
    throw specErrorAt(src, here, `at most ${MAX_RULES} rules (the API server's limit)`);
  }
  return raw.map((r, i) => {
    const rat = [...here, i];
    if (!isRecord(r)) throw specErrorAt(src, rat, "a rule is a mapping with action and exitCodes");
    for (const k of Object.keys(r)) {
      if (k !== "action" && k !== "exitCodes") {
        throw specErrorAt(src, [...rat, k], "unknown field: a rule has action and exitCodes", {
          key: true,
        });
      }
    }
    if (r.action !== "Restart") {
      throw specErrorAt(
        src,
        r.action === undefined ? rat : [...rat, "action"],
        `action must be Restart (the only action Kubernetes 1.34 defines), not ${
          JSON.stringify(r.action ?? null)
        }`,
      );
    }
    const e = r.exitCodes;
    if (!isRecord(e)) {
      throw specErrorAt(
        src,
        e === undefined ? rat : [...rat, "exitCodes"],
        "a Restart rule needs exitCodes: {operator: In|NotIn, values: [...]}",
      );
    }
    for (const k of Object.keys(e)) {
      if (k !== "operator" && k !== "values") {
        throw specErrorAt(
          src,
          [...rat, "exitCodes", k],
          "unknown field: exitCodes has operator and values",
          {
            key: true,
          },
        );
      }
    }
    if (e.operator !== "In" && e.operator !== "NotIn") {
      throw specErrorAt(src, [...rat, "exitCodes", "operator"], "operator must be In or NotIn");
    }
    const values = e.values ?? [];
    if (!Array.isArray(values) || values.length > MAX_VALUES) {
      throw specErrorAt(
        src,
        [...rat, "exitCodes", "values"],
        `values is a list of at most ${MAX_VALUES} exit codes`,
      );
    }
    values.forEach((v, j) => {
      if (!Number.isInteger(v) || (v as number) < -(2 ** 31) || (v as number) >= 2 ** 31) {
        throw specErrorAt(src, [...rat, "exitCodes", "values", j], "an exit code is an integer");
      }
    });
    const seen = new Set(values as number[]);
    if (seen.size !== values.length) {
      throw specErrorAt(src, [...rat, "exitCodes", "values"], "values must not repeat (a set)");
    }
    return { operator: e.operator, values: values as number[] };
  });
}

/**
 * Whether an init container that exited with `exitCode` runs again: a
 * successful one never does (it has completed); a failed one does when the
 * first rule matching its code says Restart, and with no rule matching when
 * its policy is OnFailure.
 */
export function initRestarts(r: InitRestart, exitCode: number): boolean {
  if (exitCode === 0) return false;
  for (const rule of r.rules) {
    const hit = rule.values.includes(exitCode);
    if (rule.operator === "In" ? hit : !hit) return true;
  }
  return r.policy === "OnFailure";
}

/** The back-off before the `n`th restart (0 first): the kubelet's 10 s, doubled, up to 5 min. */
export function initBackoffMs(n: number): number {
  return Math.min(300_000, 10_000 * 2 ** Math.min(n, 30));
}
