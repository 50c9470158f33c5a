export * from "./cni.ts";
export * from "./network.ts";
export * from "./portmap.ts";
export * from "./hostnet.ts";
