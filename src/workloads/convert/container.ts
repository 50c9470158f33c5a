/** A service's container, the warnings for what a Pod drops, and init containers for depends_on. */
import { dnsName, literal, type Obj, seconds, type ServiceConversion } from "./common.ts";

/** The container: command, environment, ports, limits, securityContext, probes, hooks. */
export function convertContainer(cv: ServiceConversion, mounts: Obj[]): Obj {
  const { svc, options, fail } = cv;
  const s = svc.name;
  const container: Obj = { name: dnsName(s), image: svc.image };
  if (svc.entrypoint) container.command = svc.entrypoint.map(literal);
  if (svc.command) container.args = svc.command.map(literal);
  if (svc.workingDir) container.workingDir = svc.workingDir;
  const env = Object.entries(svc.environment).map(([name, value]) => ({
    name,
    value: literal(value),
  }));
  if (env.length > 0) container.env = env;
  if (svc.ports.length > 0) {
    container.ports = svc.ports.map((p) => ({
      containerPort: p.containerPort,
      ...(p.hostPort && !options.workloads ? { hostPort: p.hostPort } : {}),
      ...(p.hostIP && !options.workloads ? { hostIP: p.hostIP } : {}),
      ...(p.protocol === "udp" ? { protocol: "UDP" } : {}),
    }));
  }
  const limits: Obj = {};
  if (svc.cpus) limits.cpu = svc.cpus;
  if (svc.memory) limits.memory = svc.memory;
  if (Object.keys(limits).length > 0) container.resources = { limits };
  const sc: Obj = {};
  if (svc.privileged) sc.privileged = true;
  const caps = (l: string[]) => l.map((c) => c.toUpperCase().replace(/^CAP_/, ""));
  if (svc.capAdd.length || svc.capDrop.length) {
    sc.capabilities = {
      ...(svc.capAdd.length ? { add: caps(svc.capAdd) } : {}),
      ...(svc.capDrop.length ? { drop: caps(svc.capDrop) } : {}),
    };
  }
  if (svc.user?.uid !== undefined) sc.runAsUser = svc.user.uid;
  if (svc.user?.gid !== undefined) sc.runAsGroup = svc.user.gid;
  else if (svc.user?.uid !== undefined && !svc.user.name) sc.runAsGroup = 0;
  if (svc.user?.name || svc.user?.group) {
    fail(
      s,
      ["user"],
      "a Pod takes numeric ids (runAsUser/runAsGroup): write `user: UID[:GID]` (see the image's /etc/passwd)",
    );
  }
  if (svc.readOnly) sc.readOnlyRootFilesystem = true;
  if (Object.keys(sc).length > 0) container.securityContext = sc;
  if (svc.tty) container.tty = true;
  if (svc.stopSignal && svc.stopSignal !== "SIGTERM") {
    container.lifecycle = { stopSignal: svc.stopSignal }; // Kubernetes 1.33+ ContainerStopSignals
  }
  if (svc.healthcheck) {
    const h = svc.healthcheck;
    const probe = {
      exec: { command: h.test },
      periodSeconds: seconds(h.intervalMs),
      timeoutSeconds: seconds(h.timeoutMs),
      failureThreshold: Math.max(1, h.retries),
      ...(h.startPeriodMs > 0 ? { initialDelaySeconds: Math.ceil(h.startPeriodMs / 1000) } : {}),
    };
    container.readinessProbe = probe;
    container.livenessProbe = probe;
  }
  if (mounts.length > 0) container.volumeMounts = mounts;
  // A Pod's hook is one command run as the container's process runs.
  const podHook = (k: "post_start" | "pre_stop", hs: typeof svc.hooks.postStart) => {
    if (!hs) return undefined;
    if (hs.length !== 1 || hs[0].user || hs[0].privileged || hs[0].cwd || hs[0].env) {
      fail(
        s,
        [k],
        "a Pod takes one hook of a command only: chain the commands in one (sh -c) and drop user, privileged, working_dir and environment",
      );
    }
    return { exec: { command: hs[0].command } };
  };
  if (svc.hooks.postStart || svc.hooks.preStop) {
    const postStart = podHook("post_start", svc.hooks.postStart);
    const preStop = podHook("pre_stop", svc.hooks.preStop);
    container.lifecycle = {
      ...(postStart ? { postStart } : {}),
      ...(preStop ? { preStop } : {}),
    };
  }
  return container;
}

/** Warnings for what a Pod cannot carry. */
export function warnDropped(cv: ServiceConversion): void {
  const { svc, warn } = cv;
  const s = svc.name;
  for (
    const [key, why] of [
      ["shm_size", "no Pod field sets /dev/shm's size; dropped"],
      ["ulimits", "no Pod field sets rlimits; dropped"],
    ] as const
  ) {
    if ((key === "shm_size" && svc.shmSize) || (key === "ulimits" && svc.ulimits.length)) {
      warn(s, [key], why);
    }
  }
  if (svc.links.some((l) => l.alias !== l.service)) {
    warn(
      s,
      ["links"],
      "link aliases have no Pod equivalent (service names still resolve); dropped",
    );
  }
  if (Object.keys(svc.securityOpt).length > 0) {
    warn(s, ["security_opt"], "not carried into the Pod's securityContext; dropped");
  }
  if (svc.mounts.some((m) => m.owner)) {
    warn(s, [], "configs/secrets uid, gid and mode are not carried into the Pod; dropped");
  }
  if (svc.init) {
    warn(s, ["init"], "no Pod field runs an init in front of the process; dropped");
  }
  svc.ports.forEach((p) => {
    if (p.hostPortEnd !== undefined) {
      warn(
        s,
        ["ports"],
        `host port range ${p.hostPort}-${p.hostPortEnd}: a Pod names one hostPort; ${p.hostPort} is used`,
      );
    }
  });
  if (Object.keys(svc.sysctls).length > 0) {
    warn(s, ["sysctls"], "moved to spec.securityContext.sysctls, which rkl pods do not apply");
  }
}

/** depends_on: init containers that wait for the dependency's name (and port). */
export function waitInits(cv: ServiceConversion): Obj[] {
  const { svc, byName, warn } = cv;
  const s = svc.name;
  const inits: Obj[] = [];
  svc.dependsOn.forEach((d, i) => {
    const dep = byName.get(d.service);
    if (!dep) return; // a disabled (profile) dependency
    if (d.condition === "service_completed_successfully") {
      warn(
        s,
        ["depends_on", d.service],
        `condition service_completed_successfully on ${d.service}: a Pod cannot watch another pod finish; it waits for ${d.service} to exist instead`,
      );
    }
    const port = dep.ports[0]?.containerPort;
    const name = dnsName(d.service);
    const check = port !== undefined && d.condition === "service_healthy"
      ? `nc -w 1 ${name} ${port} </dev/null`
      : `grep -qw ${name} /etc/hosts || nslookup ${name} >/dev/null 2>&1`;
    inits.push({
      name: dnsName(`wait-for-${d.service}`).slice(0, 63),
      image: svc.image,
      command: [
        "sh",
        "-c",
        literal(`until ${check}; do echo waiting for ${name}; sleep 1; done`),
      ],
    });
    void i;
  });

  return inits;
}
