/**
 * A short stable name for a CNI id, shared by the user-mode networks
 * (slirp4netns and pasta name their sockets and pid files with it; unix
 * socket paths are at most 107 bytes). Its own module so that neither
 * network's module imports the other's.
 */
export function slirpKey(cniId: string): string {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(cniId)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}
