/**
 * The kubelet's sandbox hostnames: a label, or an FQDN (setHostnameAsFQDN:
 * `name.subdomain.namespace.svc.<clusterDomain>`, a trailing dot when the
 * cluster domain is empty; a hostnameOverride DNS subdomain), 64 bytes at
 * most as sethostname(2) takes. Node e2e "Hostname of Pod … setHostnameAsFQDN"
 * and "Override hostname … valid DNS subdomain" failed on "is not a DNS label".
 */
import assert from "node:assert/strict";
import { sandboxPod } from "./translate.ts";
import { CriError } from "./grpc.ts";

const ID = "a".repeat(64);
const config = (hostname: string) => ({
  metadata: { name: "web", namespace: "default", uid: "u-1", attempt: 0 },
  hostname,
  labels: {},
  annotations: {},
});

Deno.test("sandboxPod(): FQDN hostnames up to 64 bytes, a trailing dot too", () => {
  for (
    const h of [
      "web",
      "hostfqdn-9326.t.hostfqdn-4281.svc.",
      "override.example.host",
      "a".repeat(63),
    ]
  ) {
    assert.equal(sandboxPod(ID, config(h)).spec.hostname, h);
  }
  const long = `${"a".repeat(60)}.bcde`; // 65 bytes
  for (const bad of [long, "Not_A_Name", "a..b", ".a", "-a.b", "a.b-"]) {
    assert.throws(
      () => sandboxPod(ID, config(bad)),
      (e) => e instanceof CriError && /config\.hostname/.test(e.message),
      bad,
    );
  }
});
