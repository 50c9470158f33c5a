/**
 * rkl as a library: load specs, plan and apply workloads against a Host.
 * No side effects on import.
 */
export * from "./src/errors.ts";
export * from "./src/spec/mod.ts";
export * from "./src/oci/mod.ts";
export * from "./src/net/mod.ts";
export * from "./src/store/mod.ts";
export * from "./src/sys/mod.ts";
export * from "./src/workloads/mod.ts";
