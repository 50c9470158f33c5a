/**
 * The daemon's scan: the manifests directory → desired pods (validated,
 * hashed) and the files that failed, each with its first error line.
 * Parsed files are reused while their mtime and size stay the same.
 */
import type { LoadedPod } from "../spec/pod.ts";
import { FileReadError, MAX_INPUT_BYTES, readTextBounded } from "../sys/readfile.ts";
import { type DesiredPod, isManifestName } from "./reconcile.ts";
import { sha256Hex } from "../base/hex.ts";

export const DEFAULT_MANIFESTS = "/etc/rk8s/manifests";
/** Largest manifest the daemon reads. */
export const MAX_MANIFEST_BYTES = MAX_INPUT_BYTES;

function readManifest(file: string): string {
  try {
    return readTextBounded(file, { max: MAX_MANIFEST_BYTES, follow: false });
  } catch (e) {
    if (e instanceof FileReadError) throw new Error(`${file}: ${e.reason}`);
    throw e;
  }
}

export interface Scan {
  desired: (DesiredPod & { pod: LoadedPod })[];
  /** File → first error line. */
  errors: Map<string, string>;
}

/**
 * Parses a manifest's pods. `prepare`, when there, is awaited before the
 * first file is parsed: the daemon loads the spec's modules (YAML, the
 * schemas: some 8 MB of an idle daemon's RSS) only once there is a manifest.
 */
export type LoadPodsFn = ((text: string, file: string) => LoadedPod[]) & {
  prepare?: () => Promise<void>;
};

async function sha256(text: string): Promise<string> {
  return (await sha256Hex(text)).slice(0, 16);
}

/**
 * The parsed pods without their YAML documents: locations (for the rare
 * error that needs one) re-parse the text on demand. With 50 manifests this
 * keeps the daemon's memory to the pods' plain data.
 */
function lighten(pods: LoadedPod[], text: string, file: string, loadPods: LoadPodsFn): LoadedPod[] {
  let full: LoadedPod[] | undefined;
  const again = () => full ??= loadPods(text, file);
  type Path = Parameters<LoadedPod["source"]["at"]>[0];
  return pods.map((p, i) => ({
    ...p,
    source: { file, at: (path: Path) => again()[i].source.at(path) },
    spec: {
      ...p.spec,
      containers: p.spec.containers.map((c, j) => ({
        ...c,
        source: { file, at: (path: Path) => again()[i].spec.containers[j].source.at(path) },
      })),
      initContainers: p.spec.initContainers.map((c, j) => ({
        ...c,
        source: { file, at: (path: Path) => again()[i].spec.initContainers[j].source.at(path) },
      })),
    },
  }));
}

/** Parsed manifests by path, reused while a file's mtime and size stay the same. */
export type ScanCache = Map<
  string,
  { mtime: number; size: number; hash: string; pods?: LoadedPod[]; error?: string }
>;

/** Reads and validates every manifest. A pod named in two files is an error in the later one. */
export async function scanManifests(
  dir: string,
  loadPods: LoadPodsFn,
  cache: ScanCache = new Map(),
): Promise<Scan> {
  const scan: Scan = { desired: [], errors: new Map() };
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && isManifestName(e.name)).map((e) =>
      e.name
    ).sort();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = `${dir}/${name}`;
    try {
      const st = Deno.statSync(file);
      const mtime = st.mtime?.getTime() ?? 0;
      let hit = cache.get(file);
      if (st.size > MAX_MANIFEST_BYTES) {
        // Never read: a huge file would cost memory on every relist.
        throw new Error(
          `${file}: ${st.size} bytes; rkl reads manifests up to ${MAX_MANIFEST_BYTES} bytes (1 MiB)`,
        );
      }
      if (!hit || hit.mtime !== mtime || hit.size !== st.size) {
        // Opened without following a symlink and without waiting on a FIFO
        // put there since the listing; refused unless a regular file, read up to the cap.
        const text = readManifest(file);
        hit = { mtime, size: st.size, hash: await sha256(text) };
        await loadPods.prepare?.();
        try {
          hit.pods = lighten(loadPods(text, file), text, file, loadPods);
        } catch (e) {
          hit.error = (e as Error).message.split("\n")[0];
        }
        cache.set(file, hit);
      }
      if (hit.error) throw new Error(hit.error);
      const hash = hit.hash;
      const pods = hit.pods!;
      for (const pod of pods) {
        const other = seen.get(pod.spec.name);
        if (other) {
          throw new Error(
            `${file}: pod ${JSON.stringify(pod.spec.name)} is already defined in ${other}`,
          );
        }
      }
      for (const pod of pods) {
        seen.set(pod.spec.name, file);
        scan.desired.push({ name: pod.spec.name, file, hash, pod });
      }
    } catch (e) {
      scan.errors.set(file, (e as Error).message.split("\n")[0]);
    }
  }
  for (const f of cache.keys()) if (!names.includes(f.slice(dir.length + 1))) cache.delete(f);
  return scan;
}
