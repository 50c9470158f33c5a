/**
 * The static-pod reconciler's decision, as a pure function (no I/O, no
 * clock): what the manifests want, what runs, what to do. Kept apart from
 * watching and from executing, unlike a single poll-hash-act loop, so that
 * every rule below is a unit test.
 *
 * Rules (the kubelet's for static pods):
 * - a pod in a manifest and not running → create;
 * - running with another content hash → recreate (the new manifest was
 *   already validated: an invalid file yields no desired pods);
 * - a pod whose file has an error → left as it is, the error reported;
 * - a static pod whose file no longer names it → delete.
 */

export interface DesiredPod {
  name: string;
  file: string;
  hash: string;
}

export interface ActualPod {
  name: string;
  /** Manifest file the pod came from; undefined for pods not made by the daemon. */
  file?: string;
  hash?: string;
}

export type Action =
  | { kind: "create"; name: string; file: string; hash: string }
  | { kind: "recreate"; name: string; file: string; hash: string; oldHash: string }
  | { kind: "delete"; name: string; file: string };

export function reconcile(
  desired: DesiredPod[],
  actual: ActualPod[],
  brokenFiles: ReadonlySet<string>,
): Action[] {
  const actions: Action[] = [];
  const running = new Map(actual.map((a) => [a.name, a]));
  const wanted = new Map(desired.map((d) => [d.name, d]));
  for (const d of desired) {
    const a = running.get(d.name);
    if (!a) actions.push({ kind: "create", name: d.name, file: d.file, hash: d.hash });
    else if (a.file === undefined) continue; // a pod of the same name not made from a manifest: never touched
    else if (a.hash !== d.hash) {
      actions.push({
        kind: "recreate",
        name: d.name,
        file: d.file,
        hash: d.hash,
        oldHash: a.hash ?? "",
      });
    }
  }
  for (const a of actual) {
    if (a.file === undefined || wanted.has(a.name) || brokenFiles.has(a.file)) continue;
    actions.push({ kind: "delete", name: a.name, file: a.file });
  }
  // Deletes first: a pod moved from one file to another frees its ports before it is made again.
  return [
    ...actions.filter((x) => x.kind === "delete"),
    ...actions.filter((x) => x.kind !== "delete"),
  ];
}

/** Files the daemon reads: .yaml, .yml, .json; no dotfiles, editor backups or temp files. */
export function isManifestName(name: string): boolean {
  if (name.startsWith(".") || name.endsWith("~") || name.startsWith("#")) return false;
  return /\.(ya?ml|json)$/.test(name);
}
