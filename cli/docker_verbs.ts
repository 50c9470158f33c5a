/**
 * docker's verbs at rkl's top level, with their help lines: data only, so
 * that cli/rootless_early.ts can know them without loading the CLI. cli/app.ts
 * lists them in help, cli/commands/docker.ts registers them.
 */
/** docker's verbs at the top level (cli/commands/docker.ts), in help order. */
export const DOCKER_COMMANDS: [string, string][] = [
  [
    "run",
    "create and start a container from an image, docker's way (rkl container run FILE takes YAML)",
  ],
  ["create", "create a container from an image without starting it"],
  ["start", "start created or exited containers"],
  ["stop", "stop containers: the stop signal, then SIGKILL after -t seconds"],
  ["restart", "stop (if running) and start containers again"],
  ["rm", "remove containers"],
  ["ps", "list containers (running ones; -a all)"],
  ["logs", "print a container's output"],
  ["exec", "run a command in a running container"],
  ["attach", "join a running container's terminal or output (detach: ctrl-p ctrl-q)"],
  ["inspect", "a container's state as JSON (images: rkl image inspect)"],
  ["kill", "send a signal (default SIGKILL) to containers' main process"],
  ["wait", "wait for containers to exit; print each exit code"],
  ["port", "list a container's published ports"],
  ["rename", "rename a container (running or not); its id stays"],
  ["top", "the processes of a container (its cgroup), as ps shows them"],
  ["cp", "copy files between a container and the host (container paths resolved inside its root)"],
  ["images", "list images (rkl image ls)"],
  ["pull", "pull an image (rkl image pull)"],
  ["rmi", "remove images (rkl image rm)"],
];

/** The verbs' names, in help order. */
export const DOCKER_VERBS: readonly string[] = DOCKER_COMMANDS.map(([name]) => name);
