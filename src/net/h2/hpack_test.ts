/** HPACK against the examples of RFC 7541 Appendix C (C.2 to C.6), and its bounds. */
import assert from "node:assert/strict";
import {
  entrySize,
  type Header,
  HeaderListTooLarge,
  HpackDecoder,
  hpackEncode,
  HpackError,
} from "./hpack.ts";
import { CODE_LENGTHS, CODES, huffmanDecode } from "./huffman.ts";

const hex = (s: string) =>
  new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

/** Decodes `blocks` in order with one decoder; checks each list and the table after it. */
function run(
  limit: number,
  steps: { block: string; headers: Header[]; table: Header[]; size: number }[],
) {
  const d = new HpackDecoder(limit);
  for (const [i, step] of steps.entries()) {
    assert.deepEqual(d.decode(hex(step.block)), step.headers, `block ${i + 1}`);
    assert.deepEqual(d.dynamic, step.table, `table after block ${i + 1}`);
    assert.equal(d.size, step.size, `table size after block ${i + 1}`);
    assert.equal(d.size, step.table.reduce((n, [a, b]) => n + entrySize(a, b), 0));
  }
}

Deno.test("HPACK C.2.1: literal header field with indexing", () => {
  run(4096, [{
    block: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    headers: [["custom-key", "custom-header"]],
    table: [["custom-key", "custom-header"]],
    size: 55,
  }]);
});

Deno.test("HPACK C.2.2: literal header field without indexing", () => {
  run(4096, [{
    block: "040c 2f73 616d 706c 652f 7061 7468",
    headers: [[":path", "/sample/path"]],
    table: [],
    size: 0,
  }]);
});

Deno.test("HPACK C.2.3: literal header field never indexed", () => {
  run(4096, [{
    block: "1008 7061 7373 776f 7264 0673 6563 7265 74",
    headers: [["password", "secret"]],
    table: [],
    size: 0,
  }]);
});

Deno.test("HPACK C.2.4: indexed header field", () => {
  run(4096, [{ block: "82", headers: [[":method", "GET"]], table: [], size: 0 }]);
});

const REQ1: Header[] = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "www.example.com"],
];
const REQ2: Header[] = [...REQ1, ["cache-control", "no-cache"]];
const REQ3: Header[] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const REQ_TABLES: Header[][] = [
  [[":authority", "www.example.com"]],
  [["cache-control", "no-cache"], [":authority", "www.example.com"]],
  [["custom-key", "custom-value"], ["cache-control", "no-cache"], [
    ":authority",
    "www.example.com",
  ]],
];

Deno.test("HPACK C.3: requests without Huffman coding, one decoder", () => {
  run(4096, [
    {
      block: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      headers: REQ1,
      table: REQ_TABLES[0],
      size: 57,
    },
    { block: "8286 84be 5808 6e6f 2d63 6163 6865", headers: REQ2, table: REQ_TABLES[1], size: 110 },
    {
      block: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
      headers: REQ3,
      table: REQ_TABLES[2],
      size: 164,
    },
  ]);
});

Deno.test("HPACK C.4: requests with Huffman coding, one decoder", () => {
  run(4096, [
    {
      block: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      headers: REQ1,
      table: REQ_TABLES[0],
      size: 57,
    },
    { block: "8286 84be 5886 a8eb 1064 9cbf", headers: REQ2, table: REQ_TABLES[1], size: 110 },
    {
      block: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
      headers: REQ3,
      table: REQ_TABLES[2],
      size: 164,
    },
  ]);
});

const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RES1: Header[] = [
  [":status", "302"],
  ["cache-control", "private"],
  ["date", DATE1],
  ["location", LOC],
];
const RES2: Header[] = [
  [":status", "307"],
  ["cache-control", "private"],
  ["date", DATE1],
  ["location", LOC],
];
const RES3: Header[] = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", DATE2],
  ["location", LOC],
  ["content-encoding", "gzip"],
  ["set-cookie", COOKIE],
];
/** C.5 and C.6 run with a 256-octet table: entries are evicted. */
const RES_STEPS = [
  {
    headers: RES1,
    table: [["location", LOC], ["date", DATE1], ["cache-control", "private"], [
      ":status",
      "302",
    ]] as Header[],
    size: 222,
  },
  {
    headers: RES2,
    table: [[":status", "307"], ["location", LOC], ["date", DATE1], [
      "cache-control",
      "private",
    ]] as Header[],
    size: 222,
  },
  {
    headers: RES3,
    table: [["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]] as Header[],
    size: 215,
  },
];

Deno.test("HPACK C.5: responses without Huffman coding, with eviction", () => {
  const blocks = [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
     6c65 2e63 6f6d`,
    "4803 3330 37c1 c0bf",
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
     3d31`,
  ];
  run(256, RES_STEPS.map((s, i) => ({ ...s, block: blocks[i] })));
});

Deno.test("HPACK C.6: responses with Huffman coding, with eviction", () => {
  const blocks = [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
    "4883 640e ffc1 c0bf",
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  ];
  run(256, RES_STEPS.map((s, i) => ({ ...s, block: blocks[i] })));
});

Deno.test("Huffman: Appendix B's codes as rebuilt from the lengths", () => {
  // A few rows of the table, as printed in RFC 7541 Appendix B.
  assert.equal(CODE_LENGTHS[48], 5);
  assert.equal(CODES[48], 0x0); // '0' |00000
  assert.equal(CODES[97], 0x3); // 'a' |00011
  assert.equal(CODE_LENGTHS[0], 13);
  assert.equal(CODES[0], 0x1ff8);
  assert.equal(CODES[256], 0x3fffffff); // EOS, 30 bits
  assert.equal(CODE_LENGTHS[256], 30);
  assert.equal(CODES[255], 0x3ffffee);
  assert.equal(CODE_LENGTHS[255], 26);
  // Kraft: a complete prefix code.
  assert.equal(CODE_LENGTHS.reduce((n, l) => n + 2 ** -l, 0), 1);
});

Deno.test("Huffman: EOS, over-long and non-EOS padding are errors", () => {
  assert.deepEqual(
    new TextDecoder().decode(huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f4ff"))),
    "www.example.com",
  );
  assert.throws(() => huffmanDecode(hex("ffffffff")), /EOS|longer/); // EOS coded
  assert.throws(() => huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f4ff ff")), /longer than 7/);
  assert.throws(() => huffmanDecode(hex("00")), /padding/); // '0' then 3 zero bits
});

Deno.test("HPACK: bad blocks are HpackErrors", () => {
  const d = () => new HpackDecoder(4096);
  assert.throws(() => d().decode(hex("80")), HpackError); // index 0
  assert.throws(() => d().decode(hex("ff00")), HpackError); // beyond the table (index 127)
  assert.throws(() => d().decode(hex("400a 6375")), HpackError); // truncated string
  assert.throws(() => d().decode(hex("3fe21f")), HpackError); // size update over the limit
  assert.throws(() => d().decode(hex("82 20")), HpackError); // size update after a field
  assert.throws(() => d().decode(hex("ff ffffffffff 01")), HpackError); // integer overflow
  assert.throws(() => d().decode(hex("0481ff")), HpackError); // Huffman: 8 bits of padding
});

Deno.test("HPACK: a size update shrinks the table; a header list over the bound is refused", () => {
  const d = new HpackDecoder(4096);
  d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
  assert.equal(d.dynamic.length, 1);
  assert.deepEqual(d.decode(hex("20 82")), [[":method", "GET"]]); // size 0: evicts all
  assert.equal(d.dynamic.length, 0);
  assert.throws(() => d.decode(hex("be")), HpackError);
  const big = hpackEncode([["x", "y".repeat(200)]]);
  assert.throws(() => new HpackDecoder().decode(big, 100), HeaderListTooLarge);
});

Deno.test("hpackEncode() output decodes back, static entries indexed", () => {
  const list: Header[] = [
    [":status", "200"],
    ["content-type", "application/grpc"],
    ["grpc-status", "0"],
    ["grpc-message", "x".repeat(300)],
  ];
  const block = hpackEncode(list);
  assert.equal(block[0], 0x88);
  assert.deepEqual(new HpackDecoder().decode(block), list);
});

Deno.test("HPACK: a block decoded again is reused only while the dynamic table is as it was", () => {
  const d = new HpackDecoder(4096);
  // Adds custom-key: custom-header (dynamic index 62).
  d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
  // Indexed fields only: :method GET and dynamic 62.
  const refs = hex("82be");
  assert.deepEqual(d.decode(refs), [[":method", "GET"], ["custom-key", "custom-header"]]);
  const again = d.decode(refs);
  assert.deepEqual(again, [[":method", "GET"], ["custom-key", "custom-header"]]);
  assert.equal(d.reused, 1);
  // The caller's copy is its own: changing it changes no later answer.
  again[1][1] = "changed";
  assert.deepEqual(d.decode(refs)[1], ["custom-key", "custom-header"]);
  // A new entry takes index 62: the same octets now name it.
  d.decode(hex("4003 6f6e 6503 7477 6f")); // one: two, with indexing
  assert.deepEqual(d.decode(refs), [[":method", "GET"], ["one", "two"]]);
  // A size update that empties the table: index 62 is gone.
  d.decode(hex("20"));
  assert.throws(() => d.decode(refs), HpackError);
  // A bound on the list applies to a reused block too.
  d.decode(hex("3fe1 1f")); // back to 4096
  d.decode(hex("4003 6f6e 6503 7477 6f"));
  d.decode(refs);
  assert.throws(() => d.decode(refs, 10), HeaderListTooLarge);
});
