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
