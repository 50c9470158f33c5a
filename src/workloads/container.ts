/**
 * Single containers: plan (pure) → apply (side effects). The work is split
 * by job under container/: types, plan, prepare (inputs and pull), create
 * (and its rollback through teardown), sandbox, conmon, status, lifecycle
 * (start/stop/run/restart), teardown, network release and remove. This file
 * keeps every name importable from where it always was.
 */
export { procStat } from "../sys/procstat.ts";
export {
  type ContainerPlan,
  type ContainerRecord,
  type ContainerStatus,
  type CreateOptions,
  type ExitFiles,
  type ExtraNetwork,
  type JoinNetwork,
  type NetworkUser,
  type Owner,
  type PlanOptions,
  type RootSource,
  type Sandbox,
  type StagedSubPath,
} from "./container/types.ts";
export {
  cniContainerId,
  getContainer,
  locText,
  ownerGone,
  processAlive,
  refuseWhileBeingMade,
  selfOwner,
  updateContainer,
} from "./container/record.ts";
export { planContainer, portMappings } from "./container/plan.ts";
export {
  prepareHostPaths,
  readBundle,
  readLocalhostSeccomp,
  rootSource,
  withResolvedUser,
} from "./container/prepare.ts";
export { createContainer, refuseLeftovers } from "./container/create.ts";
export {
  exitReason,
  fromEarlierBoot,
  listContainers,
  listExitFiles,
  quickRefresh,
  refresh,
} from "./container/status.ts";
export {
  killContainer,
  restartContainer,
  runContainer,
  startContainer,
  startCreated,
  stopContainer,
} from "./container/lifecycle.ts";
export {
  deleteWithRetry,
  removeAttachLinks,
  removeCgroup,
  removeEmptyParent,
  removeUnmounted,
  teardown,
} from "./container/teardown.ts";
export { deleteBridge, releaseNetworkIfUnused, unusedBridge } from "./container/network.ts";
export { removeContainer, removeContainers } from "./container/remove.ts";
export { waitConmonGone } from "./container/conmon.ts";
