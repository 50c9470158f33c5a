/**
 * What `pod validate` checks a container against when its image is not in
 * the store: the image's config read from the registry (manifest and config
 * blob, no layer, nothing stored), or, when that cannot be read, a plain
 * warning that names what was not checked instead of a false refusal.
 */
import { formatLocated, RklError, SpecError } from "../errors.ts";
import type { BundleDefaults } from "../oci/generate.ts";
import { defaultPullPolicy, parseReference } from "../image/reference.ts";
import { configDefaults } from "../image/service.ts";
import type { ImageConfig } from "../image/store.ts";
import type { LoadedContainer } from "../spec/container.ts";

export interface UnpulledCheck {
  /** The process defaults the checks use. */
  bundle: BundleDefaults;
  /** The container as checked (runAsNonRoot left out when the uid cannot be known here). */
  loaded: LoadedContainer;
  notes: string[];
  /** Set when the image's config could not be read: what was not checked, and why. */
  warning?: string;
}

/** Reads an image's config once per reference (several containers may share one image). */
export type ConfigReader = (ref: string) => Promise<ImageConfig>;

export function cachedReader(read: ConfigReader): ConfigReader {
  const seen = new Map<string, Promise<ImageConfig>>();
  return (ref) => {
    let p = seen.get(ref);
    if (!p) {
      p = read(ref);
      p.catch(() => {}); // looked at by each caller
      seen.set(ref, p);
    }
    return p;
  };
}

/** The image's User as ids when it is numeric (a name needs the layers' /etc/passwd). */
function numericUser(user: string): { uid: number; gid?: number } | undefined {
  const [u, g] = user.split(":", 2);
  if (!/^\d+$/.test(u) || (g !== undefined && !/^\d+$/.test(g))) return undefined;
  return { uid: Number(u), ...(g !== undefined ? { gid: Number(g) } : {}) };
}

/** The container with runAsNonRoot dropped, for a check that cannot be made here. */
function withoutNonRoot(loaded: LoadedContainer): LoadedContainer {
  const sc = loaded.spec.securityContext;
  return {
    ...loaded,
    spec: { ...loaded.spec, securityContext: { ...sc, runAsNonRoot: undefined } },
  };
}

export async function checkUnpulled(
  read: ConfigReader,
  loaded: LoadedContainer,
): Promise<UnpulledCheck> {
  const image = loaded.spec.image;
  const at = loaded.source.at(["image"]);
  const policy = loaded.spec.imagePullPolicy ?? defaultPullPolicy(image);
  if (policy === "Never") {
    throw new SpecError(
      at,
      `image ${JSON.stringify(image)} is not in the store and imagePullPolicy is Never`,
    );
  }
  try {
    parseReference(image);
  } catch (e) {
    throw new SpecError(at, (e as Error).message);
  }
  const sc = loaded.spec.securityContext;
  const nonRootToCheck = sc.runAsNonRoot === true && sc.runAsUser === undefined;
  let config: ImageConfig;
  try {
    config = await read(image);
  } catch (e) {
    if (!(e instanceof RklError)) throw e;
    const hasCommand = (loaded.spec.command?.length ?? 0) > 0;
    const unchecked = [
      ...(hasCommand ? [] : ["the command it runs (its Entrypoint/Cmd)"]),
      ...(nonRootToCheck ? ["runAsNonRoot (its User)"] : []),
      ...(loaded.spec.workingDir === undefined ? ["its working directory"] : []),
      "its environment",
    ];
    return {
      // The plan is made only to check the rest; what the image sets is unknown here.
      bundle: hasCommand ? {} : { entrypoint: ["(the image's, not read)"] },
      loaded: nonRootToCheck ? withoutNonRoot(loaded) : loaded,
      notes: [`image ${image} will be pulled`],
      warning: formatLocated(
        at,
        at.path,
        `the image's config could not be read (${(e as Error).message}); not checked: ${
          unchecked.join(", ")
        }`,
      ),
    };
  }
  const bundle = configDefaults(config);
  const notes = [`image ${image} will be pulled (checked against its config from the registry)`];
  let checked = loaded;
  if (config.User) {
    const ids = numericUser(config.User);
    if (ids) Object.assign(bundle, ids);
    else if (nonRootToCheck) {
      checked = withoutNonRoot(loaded);
      notes.push(
        `runAsNonRoot not checked: the image's User ${
          JSON.stringify(config.User)
        } is a name, looked up in its /etc/passwd once pulled`,
      );
    }
  }
  return { bundle, loaded: checked, notes };
}
