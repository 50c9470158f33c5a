/**
 * From a compose file to a Deployment on the cluster (issue 31, item 4; the
 * walk-through in docs/node.md): tests/cluster/compose.yaml through `rkl
 * compose convert --workloads`, `kubectl apply`, both replicas Running and
 * ready (the healthcheck became their readinessProbe), the compose
 * environment in the pods, the Service reached from a pod through kube-proxy,
 * then `kubectl delete -f` of the same YAML. Used by tests/cluster/run.ts.
 */
import { REPO } from "../_helpers/requires.ts";
import { type Cluster, sh, until } from "./cluster.ts";

export type StepFn = (name: string, fn: () => Promise<string | void>) => Promise<void>;

export const COMPOSE_FILE = new URL("./compose.yaml", import.meta.url).pathname;

export async function composeSteps(c: Cluster, step: StepFn): Promise<void> {
  await step(
    "compose file → rkl compose convert --workloads → kubectl apply → reached",
    async () => {
      const t0 = performance.now();
      // rkl's own state root for the CLI: nothing of the host's default one is read or made.
      const root = `${c.dir}/compose-cli`;
      const yaml = await sh(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        `${REPO}/cli/main.ts`,
        "compose",
        "-f",
        COMPOSE_FILE,
        "convert",
        "--workloads",
      ], { env: { RKL_ROOT: root, RKL_RUN_ROOT: `${root}/run` } });
      Deno.writeTextFileSync(`${c.dir}/shop.yaml`, yaml);
      const kinds = [...yaml.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]).join(", ");
      if (kinds !== "Deployment, Service") throw new Error(`convert wrote ${kinds || "nothing"}`);
      await c.kubectl(["apply", "-f", `${c.dir}/shop.yaml`]);
      await until("Deployment web with 2 ready replicas", async () => {
        const r =
          (await c.kubectl(["get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas}"]))
            .trim();
        return r === "2";
      }, 120_000);
      const ready = (performance.now() - t0) / 1000;
      const sel = "com.docker.compose.project=shop,com.docker.compose.service=web";
      const names = (await c.kubectl(["get", "pods", "-l", sel, "-o", "name"])).split("\n")
        .filter(Boolean);
      if (names.length !== 2) throw new Error(`pods of web: ${names.join(", ")}`);
      const pod = names[0].replace("pod/", "");
      const env = (await c.kubectl(["exec", pod, "--", "sh", "-c", "echo $GREETING"])).trim();
      if (env !== "hello from compose") {
        throw new Error(
          `GREETING in ${pod}: ${JSON.stringify(env)}`,
        );
      }
      // The Service (compose's published port 80 → the container's 8080), from a pod, through
      // kube-proxy; the pods answer with the hostname convert gave them (the service's name).
      const ip = (await c.kubectl(["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]))
        .trim();
      let body = "";
      await until(`http://${ip}/hostname from ${pod}`, async () => {
        body = await c.kubectl(
          ["exec", pod, "--", "sh", "-c", `timeout 5 wget -qO- http://${ip}/hostname`],
          { quiet: true },
        );
        return body.trim() === "web";
      }, 60_000);
      const echo = await c.kubectl(
        ["exec", pod, "--", "sh", "-c", `timeout 5 wget -qO- 'http://${ip}/echo?msg=from-compose'`],
      );
      if (echo.trim() !== "from-compose") throw new Error(`/echo through the Service: ${echo}`);
      await c.kubectl(["delete", "-f", `${c.dir}/shop.yaml`, "--wait=true", "--timeout=90s"]);
      await until(
        "web's pods gone",
        async () => (await c.kubectl(["get", "pods", "-l", sel, "-o", "name"])).trim() === "",
        90_000,
      );
      return `${kinds} applied; 2 replicas ready (readinessProbe from the healthcheck) ${
        ready.toFixed(1)
      } s after convert; GREETING set; http://${ip}:80 → :8080 answered; deleted`;
    },
  );
}
