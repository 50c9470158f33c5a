/** The probe logic lives in the core (workloads/probes.ts): lifecycle hooks share it. */
export * from "../workloads/probes.ts";
