/**
 * compose-spec files → a normalised project model. Each file is parsed with
 * positions, interpolated in place (so errors still point at the right
 * line), validated on its own, then merged in order (later files override
 * earlier ones, as `docker compose -f a -f b` does).
 *
 * The steps live in compose/: files (parse, interpolate, tags, schema),
 * merge and extends, service (one service, with ports, mounts, options),
 * project (checks across services, order), top_level, and load, which runs
 * them.
 */
export type {
  ComposeFile,
  ComposeHealthcheck,
  ComposeMount,
  ComposePort,
  ComposeProject,
  ComposeSecurityOpt,
  ComposeService,
  DependencyCondition,
  LoadComposeOptions,
} from "./compose/types.ts";
export {
  COMPOSE_NAME,
  dockerBytes,
  normalizeProjectName,
  parseDuration,
  signalName,
  sysctlAllowed,
} from "./compose/values.ts";
export { loadCompose } from "./compose/load.ts";
