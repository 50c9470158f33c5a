/** The name rules live in src/base/names.ts (net and store check names too); spec's path to them. */
export * from "../base/names.ts";
