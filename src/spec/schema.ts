/**
 * zod schemas for the Kubernetes-shaped parts rkl reads: Container, ports,
 * resources, env, volume mounts, security context. Strict objects: unknown
 * keys become warnings (see source.ts), never silent drops.
 */
import { z } from "zod";
import { isNegative, parseQuantity, QuantityError } from "./quantity.ts";

import { DNS1123_LABEL } from "./names.ts";
export { DNS1123_LABEL };

export const dnsLabel = z.string().superRefine((s, ctx) => {
  if (s.length === 0) ctx.addIssue({ code: "custom", message: "must not be empty" });
  else if (s.length > 63) {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(s)} is longer than 63 characters` });
  } else if (!DNS1123_LABEL.test(s)) {
    ctx.addIssue({
      code: "custom",
      message: `${
        JSON.stringify(s)
      } is not a DNS-1123 label (lower case letters, digits and '-', starting and ending with a letter or digit)`,
    });
  }
});

export const quantity = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  try {
    const q = parseQuantity(v);
    if (isNegative(q)) {
      ctx.addIssue({
        code: "custom",
        message: `quantity ${JSON.stringify(String(v))} must not be negative`,
      });
    }
  } catch (e) {
    if (e instanceof QuantityError) ctx.addIssue({ code: "custom", message: e.message });
    else throw e;
  }
});

const absolutePath = z.string().superRefine((s, ctx) => {
  if (!s.startsWith("/")) {
    ctx.addIssue({ code: "custom", message: `path ${JSON.stringify(s)} must be absolute` });
  } else if (s.split("/").includes("..")) {
    ctx.addIssue({ code: "custom", message: `path ${JSON.stringify(s)} must not contain '..'` });
  } else if (s.includes("\0")) {
    ctx.addIssue({ code: "custom", message: "path must not contain NUL" });
  }
});

const port = z.number().int().min(1).max(65535);

export const containerPort = z.strictObject({
  name: z.string().optional(),
  containerPort: port,
  protocol: z.enum(["", "TCP", "UDP", "tcp", "udp"]).optional(),
  hostPort: z.number().int().min(0).max(65535).optional(),
  hostIP: z.union([z.literal(""), z.ipv4()]).optional(),
});

const resourceList = z.strictObject({
  cpu: quantity.optional(),
  memory: quantity.optional(),
  "ephemeral-storage": quantity.optional(),
});

export const resources = z.strictObject({
  limits: resourceList.optional(),
  requests: resourceList.optional(),
});

export const envVar = z.strictObject({
  name: z.string().min(1).refine((s) => !s.includes("=") && !s.includes("\0"), {
    message: "must not contain '=' or NUL",
  }),
  value: z.union([z.string(), z.number(), z.boolean()]).transform(String).optional(),
});

export const volumeMount = z.strictObject({
  name: z.string().optional(),
  mountPath: absolutePath,
  readOnly: z.boolean().optional(),
  subPath: z.string().optional(),
  /** rkl extension for single containers: mount this host path directly. */
  hostPath: z.string().min(1).optional(),
});

const capability = z.string().regex(
  /^(CAP_)?[A-Z_]+$/i,
  "must be a capability name such as NET_ADMIN",
);

export const seccompProfile = z.strictObject({
  type: z.enum(["RuntimeDefault", "Unconfined", "Localhost"]),
  localhostProfile: z.string().min(1).optional(),
}).superRefine((p, ctx) => {
  if (p.type === "Localhost" && !p.localhostProfile) {
    ctx.addIssue({ code: "custom", message: "type Localhost needs localhostProfile" });
  } else if (p.type !== "Localhost" && p.localhostProfile) {
    ctx.addIssue({ code: "custom", message: "localhostProfile goes with type Localhost only" });
  } else if (
    p.localhostProfile &&
    (p.localhostProfile.startsWith("/") || p.localhostProfile.split("/").includes(".."))
  ) {
    ctx.addIssue({
      code: "custom",
      message: "localhostProfile must be a relative path without '..'",
    });
  }
});

export const securityContext = z.strictObject({
  privileged: z.boolean().optional(),
  capabilities: z.strictObject({
    add: z.array(capability).optional(),
    drop: z.array(capability).optional(),
  }).optional(),
  runAsUser: z.number().int().min(0).max(2 ** 32 - 2).optional(),
  runAsGroup: z.number().int().min(0).max(2 ** 32 - 2).optional(),
  runAsNonRoot: z.boolean().optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
  allowPrivilegeEscalation: z.boolean().optional(),
  seccompProfile: seccompProfile.optional(),
});

const argList = z.array(z.string());

const probePort = z.union([z.number().int().min(1).max(65535), z.string().min(1)]);

/** A Kubernetes Probe: one handler and its timing. */
export const probe = z.strictObject({
  exec: z.strictObject({ command: z.array(z.string()).min(1) }).optional(),
  httpGet: z.strictObject({
    path: z.string().optional(),
    port: probePort,
    host: z.string().optional(),
    scheme: z.enum(["HTTP", "HTTPS"]).optional(),
    httpHeaders: z.array(z.strictObject({ name: z.string(), value: z.string() })).optional(),
  }).optional(),
  tcpSocket: z.strictObject({ port: probePort, host: z.string().optional() }).optional(),
  initialDelaySeconds: z.number().int().min(0).optional(),
  periodSeconds: z.number().int().min(1).optional(),
  timeoutSeconds: z.number().int().min(1).optional(),
  successThreshold: z.number().int().min(1).optional(),
  failureThreshold: z.number().int().min(1).optional(),
  terminationGracePeriodSeconds: z.number().int().min(0).optional(),
}).refine((p) => [p.exec, p.httpGet, p.tcpSocket].filter(Boolean).length === 1, {
  message: "a probe needs exactly one of exec, httpGet, tcpSocket",
});

/** The Kubernetes Container fields rkl applies. */
export const containerFields = {
  name: dnsLabel,
  image: z.string().min(1, "must name a bundle directory"),
  command: argList.optional(),
  args: argList.optional(),
  env: z.array(envVar).optional(),
  workingDir: absolutePath.optional(),
  ports: z.array(containerPort).optional(),
  resources: resources.optional(),
  volumeMounts: z.array(volumeMount).optional(),
  securityContext: securityContext.optional(),
  tty: z.boolean().optional(),
  stdin: z.boolean().optional(),
  livenessProbe: probe.optional(),
  readinessProbe: probe.optional(),
  startupProbe: probe.optional(),
};

export const hostPathVolume = z.strictObject({
  name: dnsLabel,
  hostPath: z.strictObject({
    path: z.string().min(1),
    type: z.string().optional(),
  }).optional(),
  emptyDir: z.strictObject({
    medium: z.enum(["", "Memory"]).optional(),
    sizeLimit: quantity.optional(),
  }).optional(),
});

export type ContainerPortSpec = z.output<typeof containerPort>;
export type ResourcesSpec = z.output<typeof resources>;
export type EnvVarSpec = z.output<typeof envVar>;
export type VolumeMountSpec = z.output<typeof volumeMount>;
export type SecurityContextSpec = z.output<typeof securityContext>;
export type VolumeSpec = z.output<typeof hostPathVolume>;
export type ProbeSpec = z.output<typeof probe>;
