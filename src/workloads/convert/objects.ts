/** The top-level objects of a service: Pods, or a Deployment, Service and claims. */
import { containerName } from "../compose.ts";
import { HOSTS_GROUP, HOSTS_NAMES } from "../../spec/names.ts";
import { dnsName, LABEL_KEY, LABEL_VALUE, type Obj, type ServiceConversion } from "./common.ts";

/** Labels Kubernetes takes as labels; the others as annotations. */
export function labelsOf(cv: ServiceConversion): { labels: Obj; annotations: Obj } {
  const { project, svc } = cv;
  const s = svc.name;
  const labels: Obj = {
    "com.docker.compose.project": dnsName(project.name),
    "com.docker.compose.service": dnsName(s),
  };
  const annotations: Obj = {};
  for (const [k, v] of Object.entries(svc.labels)) {
    if (LABEL_KEY.test(k) && LABEL_VALUE.test(v) && v.length <= 63) labels[k] = v;
    else annotations[k] = v;
  }
  return { labels, annotations };
}

/** --workloads: claims, a Deployment and (with ports) a Service. */
export function workloadObjects(
  cv: ServiceConversion,
  p: { labels: Obj; annotations: Obj; claims: string[]; podSpec: (hostname: string) => Obj },
): Obj[] {
  const { svc } = cv;
  const { labels, annotations, claims, podSpec } = p;
  const s = svc.name;
  const objects: Obj[] = [];
  const selector = {
    "com.docker.compose.project": labels["com.docker.compose.project"],
    "com.docker.compose.service": labels["com.docker.compose.service"],
  };
  for (const claim of claims) {
    objects.push({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claim },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    });
  }
  objects.push({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: dnsName(s), labels },
    spec: {
      replicas: svc.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels, ...(Object.keys(annotations).length ? { annotations } : {}) },
        spec: podSpec(dnsName(s)),
      },
    },
  });
  if (svc.ports.length > 0) {
    objects.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: dnsName(s), labels },
      spec: {
        selector,
        ports: svc.ports.map((p) => ({
          name: `${p.protocol}-${p.containerPort}`,
          port: p.hostPort || p.containerPort,
          targetPort: p.containerPort,
          ...(p.protocol === "udp" ? { protocol: "UDP" } : {}),
        })),
      },
    });
  }
  return objects;
}

/** One Pod per replica, each in the project's hosts group. */
export function podObjects(
  cv: ServiceConversion,
  p: { labels: Obj; annotations: Obj; podSpec: (hostname: string) => Obj },
): Obj[] {
  const { project, svc, fail } = cv;
  const { labels, annotations, podSpec } = p;
  const s = svc.name;
  const objects: Obj[] = [];
  const names = (pod: string) =>
    [
      ...new Set([
        s,
        pod,
        ...(svc.containerName ? [svc.containerName] : []),
        ...svc.networks.flatMap((n) => n.aliases),
      ]),
    ].join(",");

  for (let n = 1; n <= svc.replicas; n++) {
    const pod = containerName(project.name, svc, n);
    if (n > 1 && svc.ports.some((p) => p.hostPort)) {
      fail(
        s,
        ["ports"],
        `replica ${n} would publish the same host ports: drop the host side or the replicas`,
      );
    }
    objects.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: pod,
        labels,
        annotations: {
          ...annotations,
          [HOSTS_GROUP]: dnsName(project.name),
          [HOSTS_NAMES]: names(pod),
        },
      },
      spec: podSpec(pod),
    });
  }
  return objects;
}
