/**
 * Filled in by scripts/dist.sh in the copy it packs; in a checkout the
 * commit is asked of git at run time (`rkl version`).
 */
export const COMMIT = "dev";
