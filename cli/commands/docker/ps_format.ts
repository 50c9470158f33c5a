/** `rkl ps`'s columns, `--format` templates and `--filter`s, by docker's names. */
import { UsageError } from "../../../src/errors.ts";
import type { ContainerRecord } from "../../../src/workloads/container.ts";
import { escapeControl } from "../../../src/spec/names.ts";
import { table } from "../../table.ts";

/** `rkl ps`'s flags, as commander gives them (and light.ts parses them). */
export interface PsFlags {
  all?: boolean;
  quiet?: boolean;
  filter: string[];
  format?: string;
  /** false: --no-trunc */
  trunc?: boolean;
  last?: string;
}

/** Code-point order of two strings. */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The records `ps` shows, newest first: running ones (-a or a status filter: all), filtered. */
export function psSelect(
  recs: ContainerRecord[],
  o: PsFlags,
  keep: (r: ContainerRecord) => boolean,
): ContainerRecord[] {
  const explicitStatus = o.filter.some((f) => f.startsWith("status="));
  const out = recs.filter((r) => o.all || explicitStatus || r.status === "running")
    .filter(keep)
    // Code-point order: localeCompare() would load ICU's collator first (~8 ms).
    .sort((a, b) => cmp(b.createdAt, a.createdAt) || cmp(a.name, b.name));
  return o.last !== undefined ? out.slice(0, Number(o.last) || 0) : out;
}

/** What `ps` prints of the chosen records: names (-q), a template or json, or docker's table. */
export function psText(recs: ContainerRecord[], o: PsFlags, now = Date.now()): string {
  if (o.quiet) return recs.map((r) => `${r.name}\n`).join("");
  if (o.format) {
    const command = o.format === "json" || o.format.includes(".Command");
    return renderFormat(
      o.format,
      recs.map((r) => psFields(r, now, { command })),
      recs.map((r) => r.labels),
    );
  }
  return table(
    ["NAMES", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"],
    recs.map((r) => {
      const f = psFields(r, now);
      const cmd = o.trunc === false || f.Command.length <= 22
        ? f.Command
        : `${f.Command.slice(0, 19)}…`;
      return [f.Names, f.Image, JSON.stringify(cmd), f.RunningFor, f.Status, f.Ports];
    }),
  );
}

/** docker's STATUS: "Up 3 minutes", "Exited (0) 2 seconds ago", "Created". */
export function dockerStatus(r: ContainerRecord, now = Date.now()): string {
  const since = (iso?: string) => {
    if (!iso) return "";
    const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (s < 1) return "Less than a second";
    if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
    const h = Math.round(m / 60);
    if (h < 48) return `${h} hour${h === 1 ? "" : "s"}`;
    return `${Math.round(h / 24)} days`;
  };
  switch (r.status) {
    case "running":
      return `Up ${since(r.startedAt)}`;
    case "exited":
      return `Exited (${r.exitCode ?? "?"}) ${since(r.finishedAt ?? r.startedAt)} ago`;
    case "created":
      return "Created";
    default:
      return r.status[0].toUpperCase() + r.status.slice(1);
  }
}

function portsOf(r: ContainerRecord): string {
  return (r.network?.portMappings ?? []).map((m) =>
    `${m.hostIP ?? "0.0.0.0"}:${m.hostPort}->${m.containerPort}/${m.protocol}`
  ).join(", ");
}

/**
 * `process.args` of a config.json from its first 4 KiB: rkl writes
 * `process` second and `args` after only `terminal` and `user`, and the
 * whole file (16 KiB and more with a seccomp profile) is read and parsed
 * only when the args are not there (50 containers: 20 → 2 ms).
 */
export function argsFromHead(head: string): string[] | undefined {
  const p = head.indexOf('"process"');
  const a = p < 0 ? -1 : head.indexOf('"args"', p);
  const open = a < 0 ? -1 : head.indexOf("[", a);
  if (open < 0 || !/^"args"\s*:\s*$/.test(head.slice(a, open))) return undefined;
  let inString = false;
  for (let i = open + 1; i < head.length; i++) {
    const c = head[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "]") {
      try {
        const v = JSON.parse(head.slice(open, i + 1));
        return Array.isArray(v) && v.every((x) => typeof x === "string") ? v : undefined;
      } catch {
        return undefined;
      }
    } else if (c === "[" || c === "{") return undefined;
  }
  return undefined;
}

function commandOf(r: ContainerRecord): string {
  try {
    const f = Deno.openSync(r.dirs.config, { read: true });
    try {
      const buf = new Uint8Array(4096);
      const n = f.readSync(buf) ?? 0;
      const args = argsFromHead(new TextDecoder().decode(buf.subarray(0, n)));
      if (args) return args.join(" ");
    } finally {
      f.close();
    }
    const cfg = JSON.parse(Deno.readTextFileSync(r.dirs.config)) as {
      process?: { args?: string[] };
    };
    return (cfg.process?.args ?? []).join(" ");
  } catch {
    return "";
  }
}

/** The fields `ps --format` knows, by docker's names. */
export function psFields(
  r: ContainerRecord,
  now = Date.now(),
  options: { command?: boolean } = {},
): Record<string, string> {
  return {
    ID: r.id,
    Names: r.name,
    Image: r.image,
    // config.json read only when shown (a file per container).
    Command: options.command === false ? "" : commandOf(r),
    CreatedAt: r.createdAt,
    RunningFor: dockerStatus({ ...r, status: "running", startedAt: r.createdAt }, now).slice(3) +
      " ago",
    Ports: portsOf(r),
    State: r.status,
    Status: dockerStatus(r, now),
    Labels: Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(","),
    Networks: r.hostNetwork ? "host" : r.network?.name ?? "none",
    Pod: r.pod ?? "",
  };
}

/**
 * docker's `--format` templates, the part people use: `{{.Field}}`,
 * `{{.Label "key"}}`, `\t`, a leading `table` (adds the header), `json`.
 */
export function renderFormat(
  format: string,
  rows: Record<string, string>[],
  labels: Record<string, string>[],
): string {
  if (format === "json") return rows.map((r) => JSON.stringify(r) + "\n").join("");
  let tpl = format.replaceAll("\\t", "\t").replaceAll("\\n", "\n");
  const isTable = /^table\s/.test(tpl) || tpl === "table";
  if (isTable) tpl = tpl.replace(/^table\s*/, "");
  // No rows: the fields of a stand-in record (an empty list still checks the template).
  const known = Object.keys(
    rows[0] ??
      psFields({ status: "created", labels: {}, createdAt: "" } as unknown as ContainerRecord, 0, {
        command: false,
      }),
  );
  const parts: ({ text: string } | { field: string } | { label: string })[] = [];
  let last = 0;
  for (const m of tpl.matchAll(/\{\{(.*?)\}\}/g)) {
    parts.push({ text: tpl.slice(last, m.index) });
    const inner = m[1].trim();
    const f = /^\.(\w+)$/.exec(inner);
    const l = /^\.Label\s+"([^"]*)"$/.exec(inner);
    if (f && known.includes(f[1])) parts.push({ field: f[1] });
    else if (l) parts.push({ label: l[1] });
    else {
      throw new UsageError(
        `--format: ${JSON.stringify(m[0])} is not supported: use {{.${
          known.join("}}, {{.")
        }}}, {{.Label "KEY"}}, table or json`,
      );
    }
    last = m.index + m[0].length;
  }
  parts.push({ text: tpl.slice(last) });
  const render = (r: Record<string, string>, lab: Record<string, string>) =>
    parts.map((p) =>
      "text" in p
        ? p.text
        : "field" in p
        ? escapeControl(r[p.field])
        : escapeControl(lab[p.label] ?? "")
    ).join("");
  if (!isTable) return rows.map((r, i) => render(r, labels[i]) + "\n").join("");
  // A table: the header is the field names in upper case, columns aligned on tabs.
  const header = parts.map((p) =>
    "text" in p
      ? p.text
      : "field" in p
      ? p.field.replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase()
      : p.label.toUpperCase()
  ).join("");
  const lines = [header, ...rows.map((r, i) => render(r, labels[i]))];
  const cells = lines.map((l) => l.split("\t"));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => (c[i] ?? "").length)));
  return cells.map((c) =>
    c.map((x, i) => i === c.length - 1 ? x : x.padEnd(widths[i])).join("   ").trimEnd() + "\n"
  ).join("");
}

/** `--filter KEY=VALUE`: same keys OR, different keys AND (docker's rule). */
export function psFilter(filters: string[]): (r: ContainerRecord) => boolean {
  const by = new Map<string, string[]>();
  for (const f of filters) {
    const i = f.indexOf("=");
    const [k, v] = i < 0 ? [f, ""] : [f.slice(0, i), f.slice(i + 1)];
    if (!["name", "status", "label", "id", "ancestor"].includes(k)) {
      throw new UsageError(
        `--filter ${JSON.stringify(f)}: rkl filters by name, id, status, label and ancestor`,
      );
    }
    if (k === "status" && !["created", "running", "exited", "unknown"].includes(v)) {
      throw new UsageError(`--filter ${JSON.stringify(f)}: status is created, running or exited`);
    }
    by.set(k, [...by.get(k) ?? [], v]);
  }
  return (r) =>
    [...by].every(([k, vs]) =>
      vs.some((v) => {
        switch (k) {
          case "name":
            return r.name.includes(v);
          case "id":
            return r.id.startsWith(v);
          case "status":
            return r.status === v;
          case "ancestor":
            return r.image === v || r.image.startsWith(`${v}:`) || r.imageId === v;
          default: {
            const j = v.indexOf("=");
            return j < 0 ? v in r.labels : r.labels[v.slice(0, j)] === v.slice(j + 1);
          }
        }
      })
    );
}
