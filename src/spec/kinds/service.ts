/** Service: its ports published on the host, to the first pod it selects. */
import { lazy } from "../../base/lazy.ts";
import * as z from "../zod.ts";
import {
  locate,
  type PathSegment,
  type SourceDoc,
  specErrorAt,
  validate,
  type Warning,
} from "../source.ts";
import type { LoadedPod } from "../pod.ts";
import { type KubeService, metadata, type PodOwner, selects, serverSet, warnAt } from "./common.ts";

// Schemas are built on first use (lazy): a file without this kind never pays for building them.
const serviceSchema = lazy(() => {
  const servicePort = z.strictObject({
    name: z.string().optional(),
    protocol: z.enum(["TCP", "UDP", "SCTP"]).optional(),
    appProtocol: z.string().optional(),
    port: z.number().int().min(1).max(65535),
    targetPort: z.union([z.number().int().min(1).max(65535), z.string().min(1)]).optional(),
    nodePort: z.number().int().min(1).max(65535).optional(),
  });
  return z.strictObject({
    apiVersion: z.literal("v1"),
    kind: z.literal("Service"),
    metadata,
    spec: z.object({
      type: z.enum(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]).optional(),
      selector: z.record(z.string(), z.string()).optional(),
      ports: z.array(servicePort).optional(),
    }).passthrough(),
  });
});

/**
 * A Service's ports, published on the host: `nodePort` when one is given
 * (type NodePort or LoadBalancer), on every address, as a node port is;
 * otherwise `port`, on 127.0.0.1 only, as a cluster IP is reached from inside
 * the cluster only. The traffic goes to the first pod of this file the
 * selector picks (rkl has no kube-proxy to spread it), at `targetPort` (a
 * number, or a container port's name; default `port`).
 */
export function applyService(
  src: SourceDoc,
  pods: (LoadedPod & { owner: PodOwner })[],
  warnings: Warning[],
): KubeService | undefined {
  const { data, warnings: w } = validate(src, serviceSchema(), { silent: serverSet });
  warnings.push(...w);
  const name = data.metadata.name;
  const type = data.spec.type ?? "ClusterIP";
  const loc = { file: src.file, ...locate(src, ["metadata", "name"]) };
  if (type === "ExternalName") {
    warnings.push(
      warnAt(
        src,
        ["spec", "type"],
        `Service ${name}: ExternalName is a DNS alias, which rkl does not serve; skipped`,
      ),
    );
    return undefined;
  }
  const sel = data.spec.selector;
  const ports = data.spec.ports ?? [];
  if (!sel || Object.keys(sel).length === 0 || ports.length === 0) {
    warnings.push(
      warnAt(
        src,
        ["spec"],
        `Service ${name} has no selector or no ports: nothing to publish; skipped`,
      ),
    );
    return undefined;
  }
  const chosen = pods.filter((p) => selects(sel, p.spec.labels));
  if (chosen.length === 0) {
    warnings.push(
      warnAt(src, ["spec", "selector"], `Service ${name} selects no pod of this file; skipped`),
    );
    return undefined;
  }
  const target = chosen[0];
  if (chosen.length > 1) {
    warnings.push(warnAt(
      src,
      ["spec", "selector"],
      `Service ${name} selects ${chosen.length} pods; its ports reach ${target.spec.name} only (rkl has no kube-proxy to spread connections); the others are reached at their pod IPs`,
    ));
  }
  const out: KubeService = { name, type, published: [], loc };
  ports.forEach((p, i) => {
    const at: PathSegment[] = ["spec", "ports", i];
    const protocol = p.protocol ?? "TCP";
    if (protocol === "SCTP") {
      throw specErrorAt(src, [...at, "protocol"], "SCTP ports cannot be published; use TCP or UDP");
    }
    const external = p.nodePort !== undefined && type !== "ClusterIP";
    if (p.nodePort !== undefined && type === "ClusterIP") {
      throw specErrorAt(
        src,
        [...at, "nodePort"],
        "a ClusterIP service has no nodePort (the API server refuses it): set type: NodePort",
      );
    }
    const hostPort = external ? p.nodePort! : p.port;
    const hostIP = external ? "0.0.0.0" : "127.0.0.1";
    const tp = p.targetPort ?? p.port;
    let container = target.spec.containers[0];
    let port: number | undefined = typeof tp === "number" ? tp : undefined;
    for (const c of target.spec.containers) {
      const hit = c.spec.ports.find((cp) =>
        typeof tp === "number"
          ? cp.containerPort === tp && (cp.protocol || "TCP").toUpperCase() === protocol
          : cp.name === tp
      );
      if (hit) {
        container = c;
        port = hit.containerPort;
        break;
      }
    }
    if (port === undefined) {
      throw specErrorAt(
        src,
        [...at, "targetPort"],
        `no container of pod ${target.spec.name} has a port named ${JSON.stringify(tp)}`,
      );
    }
    for (const c of target.spec.containers) {
      for (const cp of c.spec.ports) {
        if (cp.hostPort === hostPort && (cp.protocol || "TCP").toUpperCase() === protocol) {
          throw specErrorAt(
            src,
            [...at, external ? "nodePort" : "port"],
            `host port ${hostPort}/${protocol} is already published by pod ${target.spec.name}'s container ${c.spec.name}`,
          );
        }
      }
    }
    const existing = container.spec.ports.find((cp) =>
      cp.containerPort === port && !cp.hostPort &&
      (cp.protocol || "TCP").toUpperCase() === protocol
    );
    if (existing) {
      existing.hostPort = hostPort;
      existing.hostIP = hostIP === "0.0.0.0" ? undefined : hostIP;
    } else {
      container.spec.ports.push({
        containerPort: port,
        hostPort,
        protocol: protocol as "TCP" | "UDP",
        ...(hostIP === "0.0.0.0" ? {} : { hostIP }),
      });
    }
    out.published.push({ hostIP, hostPort, protocol, pod: target.spec.name, port });
  });
  return out;
}
