/**
 * docker's commands at the top level (`rkl run`, `ps`, `logs`, `exec`, …),
 * with docker's flags, on the same core as `rkl container`: a run builds the
 * container spec the YAML front end builds (docker_spec.ts) and calls the
 * same create and start; the other verbs call the functions `container` and
 * `image` call. docs/cli.md compares them with docker's and podman's.
 */
import type { Command } from "commander";
import type { Context } from "../app.ts";
import { IMAGE_VERBS } from "./docker/images.ts";
import { INSPECT_VERBS } from "./docker/inspect.ts";
import { IO_VERBS } from "./docker/io.ts";
import { LIFECYCLE_VERBS } from "./docker/lifecycle.ts";
import { RUN_VERBS } from "./docker/run.ts";
import { DOCKER_VERBS } from "../docker_verbs.ts";

export { dockerStatus, psFields, psFilter, renderFormat } from "./docker/ps_format.ts";
// `kill -s`: the signal parser kill and compose kill share (its flag defaults to -s).
export { parseSignal as signalArg } from "../../src/workloads/signals.ts";
export { filterPs } from "./docker/inspect.ts";

export function registerDocker(program: Command, ctx: Context): void {
  // `run IMAGE CMD -x`: flags after the image belong to the command (main sets this too).
  program.enablePositionalOptions();
  const verbs = {
    ...RUN_VERBS,
    ...LIFECYCLE_VERBS,
    ...INSPECT_VERBS,
    ...IO_VERBS,
    ...IMAGE_VERBS,
  };
  // Registered in help order (cli/app.ts's DOCKER_COMMANDS); __rm-on-exit is hidden.
  for (const v of [...DOCKER_VERBS, "__rm-on-exit"]) {
    verbs[v as keyof typeof verbs](program, ctx);
  }
}
