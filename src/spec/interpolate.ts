/**
 * Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
 * `${VAR+alt}`, and `$$` for a literal `$` (compose-spec, "Interpolation").
 * Defaults may themselves hold interpolations.
 */

export class InterpolationError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/**
 * `onUnset` hears of every variable used without a default that is not set
 * (docker compose warns about those and uses "").
 */
export function interpolate(
  text: string,
  env: Record<string, string | undefined>,
  onUnset?: (name: string) => void,
): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== "$") {
      out += ch;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
      continue;
    }
    if (next === "{") {
      const end = matchingBrace(text, i + 1);
      if (end < 0) throw new InterpolationError(`unclosed "\${" in ${JSON.stringify(text)}`);
      out += expand(text.slice(i + 2, end), env, onUnset);
      i = end + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (m) {
      if (env[m[0]] === undefined) onUnset?.(m[0]);
      out += env[m[0]] ?? "";
      i += 1 + m[0].length;
      continue;
    }
    throw new InterpolationError(
      `invalid "$" in ${JSON.stringify(text)}: use "$$" for a literal "$"`,
    );
  }
  return out;
}

function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let j = open; j < text.length; j++) {
    if (text[j] === "{") depth++;
    else if (text[j] === "}" && --depth === 0) return j;
  }
  return -1;
}

function expand(
  body: string,
  env: Record<string, string | undefined>,
  onUnset?: (name: string) => void,
): string {
  const m = NAME.exec(body);
  if (!m) throw new InterpolationError(`invalid variable name in "\${${body}}"`);
  const name = m[0];
  const rest = body.slice(name.length);
  const value = env[name];
  if (rest === "") {
    if (value === undefined) onUnset?.(name);
    return value ?? "";
  }
  const op = /^(:?[-?+])/.exec(rest)?.[1];
  if (!op) throw new InterpolationError(`invalid interpolation "\${${body}}"`);
  const arg = rest.slice(op.length);
  const unsetOrEmpty = value === undefined || (op.startsWith(":") && value === "");
  switch (op) {
    case ":-":
    case "-":
      return unsetOrEmpty ? interpolate(arg, env, onUnset) : value!;
    case ":?":
    case "?":
      if (unsetOrEmpty) {
        throw new InterpolationError(
          `required variable ${name} is ${value === undefined ? "not set" : "empty"}${
            arg ? `: ${interpolate(arg, env)}` : ""
          }`,
        );
      }
      return value!;
    default: // ":+" and "+"
      return unsetOrEmpty ? "" : interpolate(arg, env, onUnset);
  }
}

/** A `.env` file: KEY=VALUE lines, `#` comments, optional quotes, `export ` prefix. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const body = line.startsWith("export ") ? line.slice(7).trim() : line;
    const eq = body.indexOf("=");
    if (eq <= 0) continue;
    const key = body.slice(0, eq).trim();
    let value = body.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
      value = value.slice(1, -1);
      if (body[eq + 1] === '"') value = value.replace(/\\n/g, "\n").replace(/\\"/g, '"');
    } else {
      const hash = value.search(/\s#/);
      if (hash >= 0) value = value.slice(0, hash).trimEnd();
    }
    out[key] = value;
  }
  return out;
}

/** Splits a command string the way a POSIX shell would split words (quotes, backslashes). */
export function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === "\\" && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new InterpolationError(`unclosed ${quote} in ${JSON.stringify(s)}`);
  if (inWord) out.push(cur);
  return out;
}
