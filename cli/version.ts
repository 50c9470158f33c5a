/** Kept in its own module so `rkl --version` loads nothing else. */
export const VERSION = "0.1.0";
