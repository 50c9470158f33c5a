export * from "./container.ts";
export * from "./quantity.ts";
export * from "./schema.ts";
export * from "./source.ts";
export * from "./paths.ts";
