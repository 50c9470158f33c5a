/**
 * zod schemas for the Kubernetes-shaped parts rkl reads: Container, ports,
 * resources, env, volume mounts, security context. Strict objects: unknown
 * keys become warnings (see source.ts), never silent drops.
 */
import * as z from "./zod.ts";
import { isNegative, parseQuantity, QuantityError } from "./quantity.ts";

import {
  CONTROL_CHARS,
  DNS1123_LABEL,
  envNameError,
  labelValueError,
  qualifiedNameError,
} from "./names.ts";
export { DNS1123_LABEL };

/** A string checked by one of names.ts's rules (which return what is wrong). */
function checked(rule: (s: string) => string | undefined) {
  return z.string().superRefine((s, ctx) => {
    const bad = rule(s);
    if (bad) ctx.addIssue({ code: "custom", message: bad });
  });
}

/**
 * metadata.labels (and rkl's container labels): qualified-name keys and label
 * values. rk8s's `bundle` label holds a path (the pause bundle), so its value
 * is only kept free of control characters.
 */
export const labelMap = z.record(z.string(), z.string()).superRefine((m, ctx) => {
  for (const [k, v] of Object.entries(m)) {
    const bad = qualifiedNameError(k) ??
      (k === "bundle"
        ? (CONTROL_CHARS.test(v) ? `value ${JSON.stringify(v)} has control characters` : undefined)
        : labelValueError(v));
    if (bad) ctx.addIssue({ code: "custom", message: bad, path: [k] });
  }
});

/** metadata.annotations: qualified-name keys (any case, as the API server checks them), any value. */
export const annotationMap = z.record(z.string(), z.string()).superRefine((m, ctx) => {
  for (const k of Object.keys(m)) {
    const bad = qualifiedNameError(k.toLowerCase());
    if (bad) ctx.addIssue({ code: "custom", message: bad, path: [k] });
  }
});

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
  hostIP: z.union([z.literal(""), z.string().ip({ version: "v4" })]).optional(),
});

const resourceList = z.strictObject({
  cpu: quantity.optional(),
  memory: quantity.optional(),
  "ephemeral-storage": quantity.optional(),
});

export const resources = z.strictObject({
  limits: resourceList.optional(),
  requests: resourceList.optional(),
  /** Dynamic resource claims: refused by pod.ts (no DRA driver on one host). */
  claims: z.array(z.record(z.string(), z.unknown())).optional(),
});

const objectName = z.string().min(1);

const keyRef = z.strictObject({
  name: objectName,
  key: z.string().min(1),
  optional: z.boolean().optional(),
});

export const fieldRef = z.strictObject({
  apiVersion: z.string().optional(),
  fieldPath: z.string().min(1),
});

export const resourceFieldRef = z.strictObject({
  containerName: z.string().optional(),
  resource: z.enum([
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
  ]),
  divisor: quantity.optional(),
});

/** A refinement: exactly one of `keys` is set. */
const exactlyOne =
  (what: string, keys: string[]) => (v: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if (keys.filter((k) => v[k] !== undefined).length !== 1) {
      ctx.addIssue({ code: "custom", message: `${what} needs exactly one of ${keys.join(", ")}` });
    }
  };

export const envVar = z.strictObject({
  name: checked(envNameError),
  value: z.union([z.string(), z.number(), z.boolean()]).transform(String).optional(),
  valueFrom: z.strictObject({
    configMapKeyRef: keyRef.optional(),
    secretKeyRef: keyRef.optional(),
    fieldRef: fieldRef.optional(),
    resourceFieldRef: resourceFieldRef.optional(),
    /** Kubernetes 1.34+: a key of a file in an emptyDir; refused by pod.ts. */
    fileKeyRef: z.record(z.string(), z.unknown()).optional(),
  }).superRefine(
    exactlyOne("valueFrom", [
      "configMapKeyRef",
      "secretKeyRef",
      "fieldRef",
      "resourceFieldRef",
      "fileKeyRef",
    ]),
  ).optional(),
}).refine((e) => e.value === undefined || e.valueFrom === undefined, {
  message: "set value or valueFrom, not both",
});

const refName = z.strictObject({ name: objectName, optional: z.boolean().optional() });

export const envFromSource = z.strictObject({
  prefix: z.string().optional(),
  configMapRef: refName.optional(),
  secretRef: refName.optional(),
}).refine((e) => (e.configMapRef === undefined) !== (e.secretRef === undefined), {
  message: "envFrom needs exactly one of configMapRef, secretRef",
});

export const volumeMount = z.strictObject({
  name: z.string().optional(),
  mountPath: absolutePath,
  readOnly: z.boolean().optional(),
  subPath: z.string().optional(),
  /** Checked by pod.ts: Disabled and IfPossible (as readOnly) are honoured, Enabled refused. */
  recursiveReadOnly: z.enum(["Disabled", "IfPossible", "Enabled"]).optional(),
  /** Checked by pod.ts: None (the default) only. */
  mountPropagation: z.enum(["None", "HostToContainer", "Bidirectional"]).optional(),
  /** Refused by pod.ts (use subPath). */
  subPathExpr: z.string().optional(),
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

/** AppArmor: rkl loads no profile, so Localhost is refused (pod.ts); the others mean what rkl does. */
export const appArmorProfile = z.strictObject({
  type: z.enum(["RuntimeDefault", "Unconfined", "Localhost"]),
  localhostProfile: z.string().optional(),
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
  /** Ignored as containerd ignores it on a host without SELinux (this one). */
  seLinuxOptions: z.record(z.string(), z.string()).optional(),
  /** Windows only: ignored on Linux, as the kubelet does. */
  windowsOptions: z.record(z.string(), z.unknown()).optional(),
  /** Default only (pod.ts refuses Unmasked). */
  procMount: z.enum(["Default", "Unmasked"]).optional(),
  appArmorProfile: appArmorProfile.optional(),
});

const argList = z.array(z.string());

const probePort = z.union([z.number().int().min(1).max(65535), z.string().min(1)]);

const httpGetAction = z.strictObject({
  path: z.string().optional(),
  port: probePort,
  host: z.string().optional(),
  scheme: z.enum(["HTTP", "HTTPS"]).optional(),
  httpHeaders: z.array(z.strictObject({ name: z.string(), value: z.string() })).optional(),
});
const tcpSocketAction = z.strictObject({ port: probePort, host: z.string().optional() });
const execAction = z.strictObject({ command: z.array(z.string()).min(1) });

/** A Kubernetes Probe: one handler and its timing. */
export const probe = z.strictObject({
  exec: execAction.optional(),
  httpGet: httpGetAction.optional(),
  tcpSocket: tcpSocketAction.optional(),
  grpc: z.strictObject({
    port: z.number().int().min(1).max(65535),
    service: z.string().optional(),
  }).optional(),
  initialDelaySeconds: z.number().int().min(0).optional(),
  periodSeconds: z.number().int().min(1).optional(),
  timeoutSeconds: z.number().int().min(1).optional(),
  successThreshold: z.number().int().min(1).optional(),
  failureThreshold: z.number().int().min(1).optional(),
  terminationGracePeriodSeconds: z.number().int().min(0).optional(),
}).superRefine(exactlyOne("a probe", ["exec", "httpGet", "tcpSocket", "grpc"]));

/** A postStart or preStop hook. */
export const lifecycleHandler = z.strictObject({
  exec: execAction.optional(),
  httpGet: httpGetAction.optional(),
  tcpSocket: tcpSocketAction.optional(),
  sleep: z.strictObject({ seconds: z.number().int().min(0) }).optional(),
}).superRefine(exactlyOne("a lifecycle handler", ["exec", "httpGet", "tcpSocket", "sleep"]));

export const lifecycle = z.strictObject({
  postStart: lifecycleHandler.optional(),
  preStop: lifecycleHandler.optional(),
  stopSignal: z.string().regex(/^SIG[A-Z0-9+-]+$/, "must be a signal name such as SIGTERM")
    .optional(),
});

/** The Kubernetes Container fields rkl applies. */
export const containerFields = {
  name: dnsLabel,
  image: z.string().min(1, "must name an image or a bundle directory"),
  imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional(),
  command: argList.optional(),
  args: argList.optional(),
  env: z.array(envVar).optional(),
  envFrom: z.array(envFromSource).optional(),
  workingDir: absolutePath.optional(),
  ports: z.array(containerPort).optional(),
  resources: resources.optional(),
  volumeMounts: z.array(volumeMount).optional(),
  securityContext: securityContext.optional(),
  tty: z.boolean().optional(),
  stdin: z.boolean().optional(),
  stdinOnce: z.boolean().optional(),
  livenessProbe: probe.optional(),
  readinessProbe: probe.optional(),
  startupProbe: probe.optional(),
  lifecycle: lifecycle.optional(),
  terminationMessagePath: absolutePath.optional(),
  terminationMessagePolicy: z.enum(["File", "FallbackToLogsOnError"]).optional(),
  /** In-place resize policy: nothing resizes a pod here, so it has nothing to steer. */
  resizePolicy: z.array(z.strictObject({
    resourceName: z.string(),
    restartPolicy: z.enum(["NotRequired", "RestartContainer"]),
  })).optional(),
  /** Read by spec/pod/restart_rules.ts (Kubernetes 1.34): an init container's exit-code rules. */
  restartPolicyRules: z.array(z.unknown()).optional(),
  /** Refused by pod.ts: raw block devices from a claim. */
  volumeDevices: z.array(z.unknown()).optional(),
};

/** A file mode; pod.ts reads `0644` as octal, as kubectl's YAML 1.1 does, and checks the range. */
const fileMode = z.number().int().min(0);

const keyToPath = z.strictObject({
  key: z.string().min(1),
  path: z.string().min(1),
  mode: fileMode.optional(),
});

const configMapProjection = z.strictObject({
  name: objectName,
  items: z.array(keyToPath).optional(),
  optional: z.boolean().optional(),
});

const secretProjection = z.strictObject({
  name: objectName,
  items: z.array(keyToPath).optional(),
  optional: z.boolean().optional(),
});

const downwardItem = z.strictObject({
  path: z.string().min(1),
  fieldRef: fieldRef.optional(),
  resourceFieldRef: resourceFieldRef.optional(),
  mode: fileMode.optional(),
}).superRefine(exactlyOne("a downwardAPI item", ["fieldRef", "resourceFieldRef"]));

const downwardAPIProjection = z.strictObject({ items: z.array(downwardItem).optional() });

/** The volume sources rkl makes on one host. */
export const VOLUME_SOURCES = [
  "hostPath",
  "emptyDir",
  "configMap",
  "secret",
  "downwardAPI",
  "projected",
  "persistentVolumeClaim",
  "image",
];

/**
 * A pod volume's name: a DNS-1123 label, or a name as `podman kube generate`
 * writes it for a named volume (`mariadb_data-pvc`), which podman plays: it
 * names the volume inside the pod only.
 */
export const volumeName = z.string().superRefine((s, ctx) => {
  if (s.length === 0 || s.length > 63 || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(s)) {
    ctx.addIssue({
      code: "custom",
      message: `${
        JSON.stringify(s)
      } is not a volume name (letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63)`,
    });
  }
});

/** A claim: a DNS-1123 label, or a podman volume name (`mariadb_data`) as podman generates it. */
const claimName = volumeName;

export const podVolume = z.strictObject({
  name: volumeName,
  hostPath: z.strictObject({
    path: z.string().min(1),
    type: z.string().optional(),
  }).optional(),
  emptyDir: z.strictObject({
    medium: z.enum(["", "Memory"]).optional(),
    sizeLimit: quantity.optional(),
  }).optional(),
  configMap: configMapProjection.extend({ defaultMode: fileMode.optional() }).optional(),
  secret: z.strictObject({
    secretName: objectName,
    items: z.array(keyToPath).optional(),
    optional: z.boolean().optional(),
    defaultMode: fileMode.optional(),
  }).optional(),
  downwardAPI: downwardAPIProjection.extend({ defaultMode: fileMode.optional() }).optional(),
  projected: z.strictObject({
    defaultMode: fileMode.optional(),
    sources: z.array(z.strictObject({
      configMap: configMapProjection.optional(),
      secret: secretProjection.optional(),
      downwardAPI: downwardAPIProjection.optional(),
      serviceAccountToken: z.strictObject({
        audience: z.string().optional(),
        expirationSeconds: z.number().int().optional(),
        path: z.string(),
      }).optional(),
      clusterTrustBundle: z.record(z.string(), z.unknown()).optional(),
    })).min(1, "a projected volume needs at least one source"),
  }).optional(),
  persistentVolumeClaim: z.strictObject({
    claimName,
    readOnly: z.boolean().optional(),
  }).optional(),
  /** An image's layers, read-only (Kubernetes 1.33+ image volumes). */
  image: z.strictObject({
    reference: z.string().min(1, "must name an image"),
    pullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional(),
  }).optional(),
}).superRefine((v, ctx) => {
  const set = VOLUME_SOURCES.filter((k) => (v as Record<string, unknown>)[k] !== undefined);
  if (set.length > 1) {
    ctx.addIssue({
      code: "custom",
      message: `a volume has one source; this one has ${set.join(" and ")}`,
    });
  }
});

/** A single container's volumes: the same shape; resolveMounts refuses what needs a pod. */
export const hostPathVolume = podVolume;

export type ContainerPortSpec = z.output<typeof containerPort>;
export type ResourcesSpec = z.output<typeof resources>;
export type EnvVarSpec = z.output<typeof envVar>;
export type VolumeMountSpec = z.output<typeof volumeMount>;
export type SecurityContextSpec = z.output<typeof securityContext>;
export type VolumeSpec = z.output<typeof podVolume>;
export type ProbeSpec = z.output<typeof probe>;
export type EnvFromSpec = z.output<typeof envFromSource>;
export type FieldRefSpec = z.output<typeof fieldRef>;
export type ResourceFieldRefSpec = z.output<typeof resourceFieldRef>;
export type LifecycleHandlerSpec = z.output<typeof lifecycleHandler>;
export type LifecycleSpec = z.output<typeof lifecycle>;
