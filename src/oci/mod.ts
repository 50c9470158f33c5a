export * from "./spec.ts";
export * from "./generate.ts";
export * from "./runtime.ts";
export * from "./conmon.ts";
