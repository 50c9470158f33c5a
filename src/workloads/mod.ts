export * from "./host.ts";
export * from "./container.ts";
export * from "./logs.ts";
export * from "./etc_files.ts";
