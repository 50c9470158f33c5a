/**
 * `rkl image pull`: manifest (an index chooses this host's platform), config,
 * then every layer fetched and unpacked at once (three at a time), each blob
 * checked against its digest before it is stored and each layer's
 * uncompressed stream against the config's diff ID before its directory is
 * renamed into place. A failure leaves no record, tag, blob or layer behind
 * except a `.partial` download, which the next pull of that blob resumes.
 */
export {
  choosePlatform,
  type ConfigBlob,
  hostPlatform,
  imageRecord,
  MAX_CONFIG,
  MAX_MANIFEST,
  type Progress,
  type PullContext,
  silentProgress,
} from "./pull/common.ts";
export { settleParents, unpackInto, unpackOnce } from "./pull/layer_dirs.ts";
export { Puller } from "./pull/puller.ts"; // resolve.ts, fetch.ts, stream.ts: its steps
