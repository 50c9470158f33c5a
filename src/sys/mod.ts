export * from "./syscalls.ts";
export * from "./netns.ts";
export * from "./mounts.ts";
export * from "./command.ts";
export * from "./cgroups/mod.ts";
export * from "./cgroups/v1.ts";
export * from "./cgroups/v2.ts";
export * from "./cgroups/detect.ts";
