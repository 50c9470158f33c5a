/** Name rules, kept free of zod so that modules which only check names load fast. */

/** A DNS-1123 label: at most 63 of [a-z0-9-], starting and ending alphanumeric. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** The label `rkl daemon` reads a container's restart policy from (single containers, compose). */
export const RESTART_LABEL = "org.rkl.restart";

/** Pods of one group (a converted compose project) see each other by name in /etc/hosts. */
export const HOSTS_GROUP = "org.rkl.hosts-group";
/** The names (comma-separated) a pod answers to in its group; its hostname always. */
export const HOSTS_NAMES = "org.rkl.hosts-names";

/*
 * The Kubernetes API server's rules (k8s.io/apimachinery validation), each
 * returning what is wrong or undefined. Anything that reaches a record, a
 * table, a path or a container's environment passes one of these first.
 */

export const DNS1123_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** The name part of a qualified name, and a non-empty label value. */
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** C0 controls, DEL and C1 controls. */
// deno-lint-ignore no-control-regex
export const CONTROL_CHARS = /[\x00-\x1f\x7f-\x9f]/;

/**
 * `s` with its control characters written as escapes (`\n`, `\t`, `\x1b`,
 * `\x9b`): a value from a file, a request or a record, made safe to print
 * on one line of a terminal.
 */
export function escapeControl(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
    }
  });
}

/** Quoted for a message: JSON escapes, and DEL and C1 controls too. */
const q = (s: string) => escapeControl(JSON.stringify(s));

/** A DNS-1123 subdomain (pod and object names): at most 253 of [a-z0-9-.], alphanumeric at each end of each dot-separated part. */
export function dnsSubdomainError(s: string): string | undefined {
  if (s.length === 0) return "must not be empty";
  if (s.length > 253) return `${q(s.slice(0, 40))}… is longer than 253 characters`;
  if (!DNS1123_SUBDOMAIN.test(s)) {
    return `${
      q(s)
    } is not a DNS-1123 subdomain (lower case letters, digits, '-' and '.', starting and ending with a letter or digit)`;
  }
}

/** A qualified name (label and annotation keys): `[prefix/]name`, prefix a DNS subdomain, name at most 63 of [A-Za-z0-9-_.]. */
export function qualifiedNameError(s: string): string | undefined {
  const parts = s.split("/");
  if (parts.length > 2) return `key ${q(s)} has more than one '/'`;
  const name = parts[parts.length - 1];
  if (parts.length === 2) {
    if (parts[0] === "") return `key ${q(s)} has an empty prefix before '/'`;
    const bad = dnsSubdomainError(parts[0]);
    if (bad) return `the prefix of key ${q(s)}: ${bad}`;
  }
  if (name.length === 0) return `key ${q(s)} has an empty name`;
  if (name.length > 63) return `the name part of key ${q(s)} is longer than 63 characters`;
  if (!QUALIFIED_NAME.test(name)) {
    return `key ${
      q(s)
    } is not a qualified name (letters, digits, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/')`;
  }
}

/** A label value: empty, or at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric. */
export function labelValueError(s: string): string | undefined {
  if (s === "") return undefined;
  if (s.length > 63) return `value ${q(s.slice(0, 40))}… is longer than 63 characters`;
  if (!QUALIFIED_NAME.test(s)) {
    return `value ${
      q(s)
    } is not a label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`;
  }
}

/**
 * An environment variable name, as the API server checks it since Kubernetes
 * 1.34 (RelaxedEnvironmentVariableValidation): not empty, printable ASCII
 * only, no '='. So no newline can forge a line of the environment.
 */
export function envNameError(s: string): string | undefined {
  if (s.length === 0) return "an environment variable name must not be empty";
  if (!/^[\x20-\x3c\x3e-\x7e]+$/.test(s)) {
    return `environment variable name ${
      q(s)
    } must consist only of printable ASCII characters other than '='`;
  }
}

/** docker's rule for a volume's name (two characters at least). */
export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * A docker-style volume's name (`volume create`, `run -v NAME:…`, compose's
 * `name:` and external volumes): what is wrong with it, or undefined. The
 * claims' `pvc-NAME` volumes keep their prefix.
 */
export function volumeNameError(s: string): string | undefined {
  if (!VOLUME_NAME.test(s) || s.length > 255) {
    return `${
      q(s)
    } is not a volume name: use letters, digits, '_', '.' or '-', starting with a letter or digit (two characters at least)`;
  }
  if (s.startsWith("pvc-")) {
    return `${q(s)}: names starting with "pvc-" are PersistentVolumeClaims' volumes`;
  }
  return undefined;
}
