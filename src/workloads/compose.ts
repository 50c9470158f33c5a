/**
 * Compose is a translator: every service replica becomes an rkl container
 * (labelled with project and service), every compose network an rkl CNI
 * network with its own conflist, bridge and subnet, every named volume a
 * directory under the store. Up, down and the rest then run on the same
 * container code as `rkl container`.
 *
 * Name resolution uses managed /etc/hosts files: each container's hosts file
 * (bind-mounted from outside its rootfs) lists every project container, by
 * service name, container name and (on a shared network) aliases, with its
 * address on a shared network when there is one, and is
 * rewritten in place whenever a container of the project comes or goes. No
 * resolver process has to stay up, nothing listens on the host, and a
 * recreated service is found again as soon as `up` finishes. The cost: names
 * are only updated by rkl commands (as with compose, that is when they change).
 * The code lives in compose/: names (record, labels), networks, replica
 * (the container spec of a replica), hosts, up, down.
 */
export {
  type ComposeRecord,
  containerName,
  LABEL_CONTAINER_NAME,
  LABEL_HASH,
  LABEL_LINKS,
  LABEL_NETNS_OF,
  LABEL_NUMBER,
  LABEL_PROJECT,
  LABEL_SERVICE,
  projectContainers,
  projectDir,
  requireProject,
  serviceContainer,
  serviceHash,
  withRestartDependents,
} from "./compose/names.ts";
export { projectNetworkName, routedSubnets } from "./compose/networks.ts";
export { writeProjectHosts } from "./compose/hosts.ts";
export { composeUp, configContents, type UpOptions } from "./compose/up.ts";
export { composeDown, composeStop, stopLevels } from "./compose/down.ts";
