/**
 * compose-spec files → a normalised project model, in steps: parse each
 * file, settle the project name, prepare each file (files.ts), merge them
 * (extends, then the files in order), check the top-level names, convert
 * each enabled service (service.ts), check across services and order them,
 * then the top-level networks, volumes, configs and secrets.
 */
import { isMap, isScalar } from "../yaml.ts";
import { SpecError } from "../../errors.ts";
import { interpolate, InterpolationError } from "../interpolate.ts";
import { locate, type SourceDoc, type Warning } from "../source.ts";
import { resolveExtends } from "./extends.ts";
import { applyIncludes } from "./include.ts";
import { parseOne, prepareFile } from "./files.ts";
import { type Located, located } from "./located.ts";
import { deleteIn, mergeService, mergeValue, tagsUnder } from "./merge.ts";
import { checkServices, dependencyOrder } from "./project.ts";
import type { RawProject, RawService } from "./schema.ts";
import { toService } from "./service.ts";
import {
  checkConfigsSecrets,
  checkNetworksIpv4,
  checkTopLevelNames,
  fileSources,
  projectNetworks,
  volumeDriver,
} from "./top_level.ts";
import type {
  ComposeFile,
  ComposeProject,
  ComposeService,
  LoadComposeOptions,
  Prepared,
  ServiceContext,
} from "./types.ts";
import { normalizeProjectName } from "./values.ts";
import { volumeNameError } from "../names.ts";

/** Loads, interpolates, validates and merges compose files into a project. */
export function loadCompose(
  files: ComposeFile[],
  options: LoadComposeOptions,
): { project: ComposeProject; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const srcs = files.map((f) => parseOne(f.text, f.file));
  const L0 = located(srcs);
  const name = projectName(L0, srcs, options);
  const env = { ...options.env, COMPOSE_PROJECT_NAME: name };
  const prepared = prepareFiles(files, srcs, { dir: options.dir, env, warnings });
  const merge = (ps: Prepared[], e: Record<string, string | undefined>) =>
    mergeFiles(ps, { env: e, readFile: options.readFile, warnings });
  const included: SourceDoc[] = [];
  for (const p of prepared) {
    applyIncludes(p, options.dir, {
      env,
      readFile: options.readFile,
      warnings,
      merge: (ps) => merge(ps, env),
      srcs: included,
    });
  }
  // An error in an included service is placed in its own file.
  const L = included.length ? located([...included, ...srcs]) : L0;
  const { merged, services } = merge(prepared, env);
  if (Object.keys(services).length === 0) {
    throw L.error(["services"], "the project defines no services");
  }
  checkTopLevelNames(L, merged);
  checkNetworksIpv4(L, merged);
  const declaredNets = new Set(Object.keys(merged.networks ?? {}));
  const profiles = new Set(options.profiles ?? []);
  const enabled = Object.entries(services).filter(([, s]) =>
    !s.profiles || s.profiles.some((p) => profiles.has(p))
  );
  const ctx: ServiceContext = {
    L,
    options,
    warnings,
    services,
    declared: {
      networks: declaredNets,
      volumes: new Set(Object.keys(merged.volumes ?? {})),
      configs: new Set(Object.keys(merged.configs ?? {})),
      secrets: new Set(Object.keys(merged.secrets ?? {})),
    },
    enabledNames: new Set(enabled.map(([n]) => n)),
  };
  let usesDefault = false;
  const out: ComposeService[] = enabled.map(([svc, s]) => {
    const r = toService(ctx, svc, s);
    if (r.usesDefault) usesDefault = true;
    return r.service;
  });
  checkServices(L, out, ctx.enabledNames);
  const order = dependencyOrder(L, out);
  const networks = projectNetworks(merged, usesDefault, declaredNets);
  checkConfigsSecrets(L, merged);
  const configs = fileSources(merged, "configs", options);
  const secrets = fileSources(merged, "secrets", options);
  const volumes = Object.entries(merged.volumes ?? {}).map(([n, o]) => {
    // docker compose's: `name:` is the volume's own name, and an external volume's is its key
    // unless `name:` says; neither takes the project's prefix.
    const own = o?.name ?? (o?.external ? n : undefined);
    const why = own === undefined ? undefined : volumeNameError(own);
    if (why) throw L.error(["volumes", n, o?.name !== undefined ? "name" : "external"], why);
    return {
      name: n,
      external: o?.external ?? false,
      ...(own !== undefined ? { volumeName: own } : {}),
      // Where it is declared: an external one found missing at up is reported there.
      ...(o?.external ? { loc: L.at(["volumes", n]) } : {}),
      ...volumeDriver(L, n, o),
    };
  });
  tmpfsVolumes(L, volumes, order);
  const fileIndex = (f: string) => files.findIndex((x) => x.file === f);
  warnings.sort((a, b) => fileIndex(a.file) - fileIndex(b.file) || (a.line ?? 0) - (b.line ?? 0));

  return {
    project: {
      name,
      dir: options.dir,
      files: files.map((f) => f.file),
      services: order,
      networks,
      volumes,
      configs,
      secrets,
    },
    warnings,
  };
}

/**
 * A local volume with tmpfs `driver_opts` is a tmpfs where it is mounted.
 * docker mounts it once and shares it among the containers that use it at
 * the same time; here each mount is its own tmpfs, so one container only
 * may use it (more is refused at the volume's line).
 */
function tmpfsVolumes(
  L: Located,
  volumes: ComposeProject["volumes"],
  services: ComposeService[],
): void {
  for (const v of volumes) {
    if (!v.tmpfs) continue;
    const users = services.filter((s) =>
      s.mounts.some((m) => m.kind === "volume" && m.source === v.name)
    );
    const count = users.reduce((n, s) => n + s.replicas, 0);
    if (count > 1) {
      throw L.error(
        ["volumes", v.name, "driver_opts"],
        `tmpfs volume ${JSON.stringify(v.name)} is used by ${count} containers (${
          users.map((s) => s.name).join(", ")
        }): rkl gives each mount its own tmpfs, so it cannot be shared; share a named volume without driver_opts instead`,
      );
    }
    for (const s of users) {
      s.mounts = s.mounts.map((m) =>
        m.kind === "volume" && m.source === v.name
          ? {
            kind: "tmpfs",
            source: "",
            target: m.target,
            readOnly: m.readOnly || v.tmpfs!.readOnly,
            options: v.tmpfs!.options,
          }
          : m
      );
    }
  }
}

/**
 * The project name comes first: `${COMPOSE_PROJECT_NAME}` interpolates to it.
 * `-p`, else the top-level `name` (the last file's), else the directory's.
 */
function projectName(L: Located, srcs: SourceDoc[], options: LoadComposeOptions): string {
  let topName: string | undefined;
  for (const src of srcs) {
    const node = isMap(src.doc.contents) ? src.doc.contents.get("name", true) : undefined;
    if (isScalar(node) && typeof node.value === "string") {
      try {
        topName = interpolate(node.value, options.env);
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        throw L.error(["name"], e.message);
      }
    }
  }
  const rawName = options.projectName ?? topName ??
    options.dir.split("/").filter(Boolean).pop() ?? "default";
  const name = normalizeProjectName(rawName);
  if (!name) {
    throw new SpecError(
      options.projectName ? { file: "-p" } : L.at(["name"]),
      `project name ${JSON.stringify(rawName)} has no usable characters`,
    );
  }
  return name;
}

/** Each file prepared on its own; `version` warned about once. */
function prepareFiles(
  files: ComposeFile[],
  srcs: SourceDoc[],
  o: { dir: string; env: Record<string, string | undefined>; warnings: Warning[] },
): Prepared[] {
  const prepared: Prepared[] = [];
  let warnedVersion = false;
  files.forEach((f, i) => {
    const p = prepareFile(srcs[i], f.dir ?? o.dir, o.env, o.warnings);
    if (p.raw.version !== undefined && !warnedVersion) {
      // Once per project, as docker compose says it.
      warnedVersion = true;
      o.warnings.push({
        file: f.file,
        ...locate(p.src, ["version"], { key: true }),
        path: "version",
        message: "the attribute `version` is obsolete and ignored; remove it",
      });
    }
    prepared.push(p);
  });
  return prepared;
}

/**
 * Merge: each file's `extends` first (within the file and across files),
 * then the files in order, a later file's `!reset`/`!override` dropping
 * what the earlier ones set at that path.
 */
function mergeFiles(
  prepared: Prepared[],
  o: {
    env: Record<string, string | undefined>;
    readFile: LoadComposeOptions["readFile"];
    warnings: Warning[];
  },
): { merged: RawProject; services: Record<string, RawService> } {
  const merged: RawProject = {};
  const services: Record<string, RawService> = {};
  const loaded = new Map<string, Prepared>();
  for (const p of prepared) {
    const own = resolveExtends(p, o.env, o.readFile, o.warnings, loaded);
    for (const path of [...p.tags.reset, ...p.tags.override]) {
      if (path[0] === "services" && path.length === 2) delete services[String(path[1])];
      else if (path[0] !== "services") deleteIn(merged, path);
    }
    if (p.raw.name !== undefined) merged.name = p.raw.name;
    for (const [k, v] of Object.entries(own)) {
      services[k] = services[k]
        ? mergeService(services[k], v ?? {}, tagsUnder(p.tags, ["services", k]))
        : (v ?? {});
    }
    for (const key of ["networks", "volumes", "configs", "secrets"] as const) {
      if (p.raw[key]) merged[key] = mergeValue("", merged[key] ?? {}, p.raw[key]) as never;
    }
  }
  return { merged, services };
}
