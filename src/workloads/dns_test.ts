import assert from "node:assert/strict";
import { parseResolvConf, podResolvConf } from "./dns.ts";
import { dnsResolvConf } from "./pod.ts";

const HOST = `# made by hand
nameserver 127.0.0.53
nameserver 10.0.0.2
search old.example
search corp.example. lan
options edns0 ndots:2
`;

Deno.test("the host's resolv.conf is read as the kubelet reads it", () => {
  assert.deepEqual(parseResolvConf(HOST), {
    servers: ["127.0.0.53", "10.0.0.2"],
    searches: ["corp.example", "lan"],
    options: ["edns0", "ndots:2"],
  });
});

Deno.test("dnsConfig is appended to the host's resolv.conf, options merged by name", () => {
  const { dns, notes } = podResolvConf(
    {
      base: "host",
      nameservers: ["10.0.0.2", "192.0.2.1"],
      searches: ["ns1.svc.example", "lan"],
      options: [{ name: "ndots", value: "5" }, { name: "single-request" }],
    },
    HOST,
    false,
  );
  assert.equal(
    dnsResolvConf(dns),
    "search corp.example lan ns1.svc.example\nnameserver 10.0.0.2\nnameserver 192.0.2.1\noptions edns0 ndots:5 single-request\n",
  );
  assert.deepEqual(notes, []);
  // On the host's network its loopback resolver is kept.
  assert.deepEqual(
    podResolvConf({ base: "host", nameservers: [], searches: [], options: [] }, HOST, true).dns
      .servers,
    ["127.0.0.53", "10.0.0.2"],
  );
});

Deno.test("dnsPolicy None starts from nothing", () => {
  const { dns } = podResolvConf(
    { base: "none", nameservers: ["1.2.3.4"], searches: ["a.example"], options: [] },
    HOST,
    false,
  );
  assert.equal(dnsResolvConf(dns), "search a.example\nnameserver 1.2.3.4\n");
});

Deno.test("past 3 nameservers or the search limits, the kubelet's cut is made and said", () => {
  const many = Array.from({ length: 40 }, (_, i) => `d${i}.example`);
  const { dns, notes } = podResolvConf(
    {
      base: "host",
      nameservers: ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
      searches: many,
      options: [],
    },
    HOST,
    false,
  );
  assert.deepEqual(dns.servers, ["10.0.0.2", "192.0.2.1", "192.0.2.2"]);
  assert.equal(dns.searches.length, 32);
  assert.equal(notes.length, 2);
  assert.match(notes[0], /more than 3 nameservers/);
  const long = Array.from(
    { length: 12 },
    (_, i) => `${String(i).padStart(3, "x")}${"a".repeat(196)}.example`,
  );
  const cut = podResolvConf(
    { base: "none", nameservers: ["192.0.2.1"], searches: long, options: [] },
    "",
    false,
  );
  assert.ok(cut.dns.searches.join(" ").length <= 2048);
  assert.equal(cut.dns.searches.length, 9);
  assert.match(cut.notes[0], /2048/);
});
