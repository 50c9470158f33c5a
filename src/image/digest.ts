/** Synchronous and streaming sha256 (node:crypto), for the puller and the importer only. */
import { createHash } from "node:crypto";

export { createHash };

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A running sha256 (node:crypto's Hash). */
export type Hash = ReturnType<typeof createHash>;
