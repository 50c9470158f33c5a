/**
 * Shell completion scripts, generated from the command tree commander holds
 * (commands, aliases, flags, arguments), so they never drift from the CLI.
 * Names of containers, pods and compose projects come at completion time
 * from `rkl __complete KIND`, which reads the store.
 */
import type { Command } from "commander";

interface Node {
  /** Command path with canonical names, e.g. "container/rm". */
  path: string;
  subs: string[];
  flags: string[];
  /** What the positional arguments name. */
  names?: "containers" | "pods" | "projects" | "files";
}

/** The top-level docker verbs whose arguments are container names (cli/commands/docker.ts). */
const CONTAINER_VERBS = new Set([
  "start",
  "stop",
  "restart",
  "rm",
  "logs",
  "exec",
  "attach",
  "inspect",
  "kill",
  "wait",
  "port",
  "rename",
  "top",
]); // deno-fmt-ignore

function namesFor(path: string, args: string[]): Node["names"] {
  const a = args[0] ?? "";
  if (a === "file" || a === "FILE") return "files";
  if (CONTAINER_VERBS.has(path)) return "containers";
  if (path.startsWith("container/") && (a === "name" || a === "names")) return "containers";
  if (path === "stats" && a === "names") return "containers";
  if (path.startsWith("pod/") && (a === "name" || a === "pod")) return "pods";
  if (path === "generate/kube") return "pods";
  return undefined;
}

function walk(cmd: Command, path: string, out: Node[]): void {
  const visible = cmd.commands.filter((c) => !c.name().startsWith("__"));
  const args = (cmd as unknown as { registeredArguments: { name(): string }[] })
    .registeredArguments.map((a) => a.name());
  out.push({
    path,
    subs: visible.flatMap((c) => [c.name(), ...c.aliases()]),
    flags: cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f)),
    names: namesFor(path, args),
  });
  for (const c of visible) walk(c, path ? `${path}/${c.name()}` : c.name(), out);
}

/** alias → canonical name per parent path, so `c rm` finds `container/rm`. */
function aliasMap(cmd: Command, path: string, out: Map<string, string>): void {
  for (const c of cmd.commands) {
    const p = path ? `${path}/` : "";
    for (const a of c.aliases()) out.set(`${p}${a}`, `${p}${c.name()}`);
    aliasMap(c, `${p}${c.name()}`, out);
  }
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function bash(nodes: Node[], aliases: Map<string, string>): string {
  const sub = nodes.map((n) => `  [${q(n.path || "/")}]=${q(n.subs.join(" "))}`).join("\n");
  const flags = nodes.map((n) => `  [${q(n.path || "/")}]=${q(n.flags.join(" "))}`).join("\n");
  const names = nodes.filter((n) => n.names).map((n) => `  [${q(n.path)}]=${q(n.names!)}`)
    .join("\n");
  const al = [...aliases].map(([a, c]) => `  [${q(a)}]=${q(c)}`).join("\n");
  return `# bash completion for rkl (rkl completion bash > /etc/bash_completion.d/rkl)
declare -A _rkl_sub=(
${sub}
)
declare -A _rkl_flags=(
${flags}
)
declare -A _rkl_names=(
${names}
)
declare -A _rkl_alias=(
${al}
)
_rkl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" w next
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) continue ;; esac
    next="\${path:+$path/}$w"
    [ -n "\${_rkl_alias[$next]}" ] && next=\${_rkl_alias[$next]}
    if [[ " \${_rkl_sub[\${path:-/}]} " == *" $w "* ]]; then path=$next; fi
  done
  local words="\${_rkl_sub[\${path:-/}]} \${_rkl_flags[\${path:-/}]}"
  local names=\${_rkl_names[$path]}
  case "$cur" in -*) names="" ;; esac
  case "$names" in
    files) COMPREPLY=($(compgen -f -- "$cur")) ;;
    containers | pods | projects)
      COMPREPLY=($(compgen -W "$words $(rkl __complete "$names" 2>/dev/null)" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
  esac
}
complete -o default -F _rkl rkl
`;
}

function fish(nodes: Node[]): string {
  const lines = [
    "# fish completion for rkl (rkl completion fish > ~/.config/fish/completions/rkl.fish)",
  ];
  lines.push("complete -c rkl -f");
  for (const n of nodes) {
    const parts = n.path ? n.path.split("/") : [];
    const cond = parts.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${parts[parts.length - 1]}`;
    if (n.subs.length) lines.push(`complete -c rkl -n ${q(cond)} -a ${q(n.subs.join(" "))}`);
    for (const f of n.flags) {
      const opt = f.startsWith("--") ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`;
      lines.push(`complete -c rkl -n ${q(cond)} ${opt}`);
    }
    if (n.names === "files") lines.push(`complete -c rkl -n ${q(cond)} -F`);
    else if (n.names) {
      lines.push(
        `complete -c rkl -n ${q(cond)} -a ${q(`(rkl __complete ${n.names} 2>/dev/null)`)}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

export function completionScript(program: Command, shell: "bash" | "zsh" | "fish"): string {
  const nodes: Node[] = [];
  walk(program, "", nodes);
  const aliases = new Map<string, string>();
  aliasMap(program, "", aliases);
  // compose's own flag -p/--project-name names projects.
  if (shell === "fish") return fish(nodes);
  const b = bash(nodes, aliases);
  if (shell === "bash") return b;
  return `#compdef rkl\n# zsh completion for rkl (rkl completion zsh > "\${fpath[1]}/_rkl")\nautoload -U +X bashcompinit && bashcompinit\n${b}`;
}
