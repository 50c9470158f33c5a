/** Quantities live in src/base/quantity.ts (sys/cgroups converts CPU shares too); spec's path to them. */
export * from "../base/quantity.ts";
