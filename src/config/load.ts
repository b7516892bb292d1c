import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parseEnv } from "node:util";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import { ConfigError, type ConfigIssue } from "../errors.ts";
import { configSchema, type Config } from "./schema.ts";
import { validateConfig } from "./validate.ts";

export interface LoadedConfig {
  /** The file as named by the user, for messages. */
  file: string;
  /** Folder of the config file; relative paths in it (state, ca) resolve against it. */
  dir: string;
  config: Config;
  /** `state` resolved to an absolute path. */
  statePath: string;
  /** Environment variables that were unset and replaced by placeholders (only with missingEnv: "placeholder"). */
  placeholders: string[];
  /** The `.env` file beside the config that filled in variables, when there was one. */
  envFile?: string;
  /**
   * Valid settings that are surely not what was meant (a from: that can match nothing), with path
   * and line as an error's. Every command says them (configWarningText): the daemon logs them at
   * start (warn), `mailbell check` prints them, `mailbell test` writes them to stderr.
   */
  warnings: ConfigIssue[];
}

export interface LoadOptions {
  /**
   * error (default): an unset `${VAR}` is a config error. placeholder: it becomes a stand-in
   * value, for commands that send nothing (`mailbell test` needs no password to try a rule).
   */
  missingEnv?: "error" | "placeholder";
}

type PathSegment = string | number;

/**
 * Reads, substitutes `${VAR}`s, validates. Every problem found is reported at once, with its line.
 * Variables come from `env`, then from a `.env` file beside the config when there is one.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new ConfigError(file, [{ path: "", message: `cannot read the config file (${reason}). Pass an existing YAML file with --config, e.g. --config mailbell.yaml (see examples/).` }]);
  }
  const envFile = path.join(path.dirname(file), ".env");
  const fromFile = await readEnvFile(envFile);
  if (fromFile === undefined) return parseConfig(text, file, env, options);
  const loaded = parseConfig(text, file, withEnvFile(env, fromFile.values), options);
  return { ...loaded, envFile, warnings: [...fromFile.warnings, ...loaded.warnings] };
}

/**
 * The `.env` file's variables, or undefined when there is none. It holds secrets, so it is refused
 * when group or others may read it, as ssh refuses a private key that others can read.
 */
export async function readEnvFile(file: string): Promise<{ values: Record<string, string>; warnings: ConfigIssue[] } | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(file, [{ path: "", message: `cannot read the .env file beside the config (${(err as Error).message}). Make it readable by the user mailbell runs as, or remove it.` }]);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(file, [
      {
        path: "",
        message: `this .env file holds secrets but group or others may read it (mode ${(mode & 0o777).toString(8)}). Make it private: chmod 600 ${file}`,
      },
    ]);
  }
  try {
    const text = await readFile(file, "utf8");
    return { values: parseEnv(text) as Record<string, string>, warnings: envFileWarnings(text, file) };
  } catch (err) {
    throw new ConfigError(file, [{ path: "", message: `cannot read the .env file beside the config (${(err as Error).message}). Make it readable by the user mailbell runs as, or remove it.` }]);
  }
}

/**
 * Lines of a .env file that Node's parseEnv reads otherwise than they look: an unquoted value is
 * cut at a # (the rest is a comment), and a quoted one ends at its second quote mark. Either
 * silently shortens a password; the warning names the variable and line, never the value.
 */
export function envFileWarnings(text: string, file: string): ConfigIssue[] {
  const lines = text.split(/\r?\n/);
  const warnings: ConfigIssue[] = [];
  const warn = (line: number, message: string) => warnings.push({ path: "", file, line, message });
  for (let i = 0; i < lines.length; i++) {
    const assignment = /^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*)$/.exec(lines[i]!);
    if (!assignment) continue;
    const [, name, value] = assignment as unknown as [string, string, string];
    const quote = value[0];
    if (quote !== '"' && quote !== "'" && quote !== "`") {
      if (value.includes("#")) warn(i + 1, `${name} is not in quotes and holds a #: everything from the # on is read as a comment, so its value is cut there. Put the value in single quotes: ${name}='…' (a comment may follow the closing quote); if the # starts a comment on purpose, quote the value before it to say so`);
      continue;
    }
    // A quoted value may go on over several lines, up to its closing quote; unclosed, the line is read as it stands.
    let rest = value.slice(1);
    let last = i;
    while (!rest.includes(quote) && last + 1 < lines.length) rest = lines[++last]!;
    if (!rest.includes(quote)) continue;
    const after = rest.slice(rest.indexOf(quote) + 1).trim();
    const other = quote === "'" ? '"' : "'";
    if (after !== "" && !after.startsWith("#")) warn(last + 1, `${name}: the quoted value ends at its second ${quote}, and the text after it is dropped. A value holding ${quote} goes in ${other === '"' ? "double" : "single"} quotes: ${name}=${other}…${other}`);
    i = last;
  }
  return warnings;
}

/** The environment wins: a variable set (and not empty) there is kept, the file fills in the rest. */
export function withEnvFile(env: NodeJS.ProcessEnv, fromFile: Record<string, string>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...env };
  for (const [name, value] of Object.entries(fromFile)) if (merged[name] === undefined || merged[name] === "") merged[name] = value;
  return merged;
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // After the first syntax error the parser is lost; what it says next is noise.
    throw new ConfigError(
      file,
      doc.errors.slice(0, 1).map((e) => ({
        path: "",
        line: e.linePos?.[0]?.line,
        message: `not valid YAML: ${e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}. Check the indentation and quoting there (inside { … }, write "\${VAR}" in quotes).`,
      })),
    );
  }
  const lineOf = (p: readonly PathSegment[]): number | undefined => lineOfPath(doc, lineCounter, p);

  const raw: unknown = doc.toJS() ?? {};
  // Every problem at once: an unset variable is reported, and a stand-in lets validation go on
  // to find the file's other mistakes.
  const envIssues: ConfigIssue[] = [];
  const placeholders: string[] = [];
  const unset = new Set<string>();
  const envFile = path.join(path.dirname(file), ".env");
  const substituted = substituteEnv(
    raw,
    [],
    env,
    (p, message) => envIssues.push({ path: formatPath(p), line: lineOf(p), message }),
    (name, at, message) => {
      if (options.missingEnv === "placeholder") placeholders.push(name);
      else {
        envIssues.push({ path: formatPath(at), line: lineOf(at), message: `${message} Set it: export ${name}=… before starting mailbell, or add the line ${name}='…' to ${envFile} (chmod 600).` });
        unset.add(name);
      }
      return placeholderFor(name, at);
    },
  );

  const parsed = configSchema.safeParse(substituted);
  const schemaIssues = parsed.success
    ? []
    : parsed.error.issues.map((issue) => {
        const p = issue.path.filter((s): s is PathSegment => typeof s !== "symbol");
        return { path: formatPath(p), line: lineOf(p), message: describeIssue(issue, p) };
      });
  const envPaths = new Set(envIssues.map((i) => i.path));
  const issues = [...envIssues, ...schemaIssues.filter((i) => !envPaths.has(i.path))];
  if (!parsed.success || issues.length > 0) throw new ConfigError(file, [...sortByLine(issues), ...unsetSummary([...unset], envFile)]);
  const semantic = validateConfig(parsed.data);
  const located = (list: ConfigIssue[]): ConfigIssue[] => list.map((i) => ({ ...i, line: i.line ?? lineOf(parsePath(i.path)) }));
  if (semantic.issues.length > 0) throw new ConfigError(file, located(semantic.issues));
  const dir = path.dirname(path.resolve(file));
  return { file, dir, config: parsed.data, statePath: path.resolve(dir, parsed.data.state), placeholders, warnings: sortByLine(located(semantic.warnings)) };
}

const envPattern = /\$\{([^}]*)\}/g;

/** `${VAR}` in any string value is replaced from the environment; `$${` writes a literal `${`. */
function substituteEnv(
  value: unknown,
  at: PathSegment[],
  env: NodeJS.ProcessEnv,
  report: (p: PathSegment[], message: string) => void,
  onMissing: (name: string, at: PathSegment[], message: string) => string,
): unknown {
  if (typeof value === "string") {
    const escaped = value.split("$${");
    return escaped
      .map((piece) =>
        piece.replace(envPattern, (_whole, name: string) => {
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
            report(at, `"\${${name}}" is not a valid variable reference; write \${NAME} with letters, digits and _ (write $\${ for a literal "\${").`);
            return "";
          }
          const v = env[name];
          if (v === undefined || v === "") {
            return onMissing(name, at, `environment variable ${name} is not set.`);
          }
          return v;
        }),
      )
      .join("${");
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...at, i], env, report, onMissing));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, [...at, k], env, report, onMissing);
    return out;
  }
  return value;
}

/** With two or more variables unset, one issue that names them all and how to set them at once. */
function unsetSummary(names: readonly string[], envFile: string): ConfigIssue[] {
  if (names.length < 2) return [];
  return [
    {
      path: "",
      message: `${names.length} environment variables are not set: ${names.join(", ")}. Set them before starting mailbell:\n${names.map((n) => `      export ${n}=…`).join("\n")}\n    or put these lines in ${envFile} (then chmod 600 ${envFile}):\n${names.map((n) => `      ${n}='…'`).join("\n")}`,
    },
  ];
}

/**
 * A stand-in that passes validation where the variable is used: URLs must still look like URLs,
 * a Telegram bot token like one (123:abc) and its chat like a chat (@name).
 */
function placeholderFor(name: string, at: readonly PathSegment[]): string {
  switch (at.at(-1)) {
    case "url":
      return `https://${name.toLowerCase().replace(/_/g, "-")}.unset.invalid/`;
    case "token":
      return `0:unset-${name}`;
    case "chatId":
      return `@unset_${name}`;
    default:
      return `unset-${name}`;
  }
}

function sortByLine(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function describeIssue(issue: z.core.$ZodIssue, p: readonly PathSegment[]): string {
  switch (issue.code) {
    case "unrecognized_keys": {
      const valid = validKeysAt(p);
      const keys = issue.keys.map((k) => `"${k}"`).join(", ");
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}.${valid ? ` Valid keys here: ${valid.join(", ")}.` : ""} Check the spelling or remove it.`;
    }
    case "invalid_type":
      if (issue.message.includes("received undefined")) return `is required (${issue.expected}). Add it.`;
      return `must be ${article(issue.expected)} ${issue.expected}. ${issue.message.replace(/^Invalid input: /, "")}.`;
    case "invalid_value":
      return `must be one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}.`;
    case "invalid_union":
      if ("options" in issue && Array.isArray(issue.options)) return `must be one of: ${(issue.options as unknown[]).map(String).join(", ")}.`;
      return issue.message;
    case "too_small":
      if (issue.origin === "array") return `needs at least ${issue.minimum} entr${issue.minimum === 1 ? "y" : "ies"}.`;
      if (issue.origin === "string") return issue.minimum === 1 ? "must not be empty." : `must be at least ${issue.minimum} characters.`;
      return `must be at least ${issue.minimum}.`;
    case "too_big":
      return `must be at most ${issue.maximum}.`;
    default:
      return issue.message.endsWith(".") ? issue.message : `${issue.message}.`;
  }
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

/** The keys the schema allows at a path, to suggest them next to an unknown key. */
function validKeysAt(p: readonly PathSegment[]): string[] | undefined {
  let schema: unknown = configSchema;
  for (const seg of [...p, null]) {
    schema = unwrap(schema);
    const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) return undefined;
    if (seg === null) {
      if (def.type === "object") return Object.keys(def.shape as object);
      return undefined;
    }
    if (def.type === "array" && typeof seg === "number") schema = def.element;
    else if (def.type === "object" && typeof seg === "string") schema = (def.shape as Record<string, unknown>)[seg];
    else if (def.type === "record") schema = def.valueType;
    else return undefined;
  }
  return undefined;
}

function unwrap(schema: unknown): unknown {
  for (;;) {
    const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (def && (def.type === "optional" || def.type === "default" || def.type === "nullable") && def.innerType) schema = def.innerType;
    else return schema;
  }
}

export function formatPath(p: readonly PathSegment[]): string {
  let out = "";
  for (const seg of p) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function parsePath(s: string): PathSegment[] {
  const out: PathSegment[] = [];
  const re = /([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g;
  for (const m of s.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
  }
  return out;
}

/** The line of the deepest node along the path that exists in the file. */
function lineOfPath(doc: Document, lc: LineCounter, p: readonly PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let line: number | undefined = rangeLine(node, lc);
  for (const seg of p) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && it.key.value === seg);
      if (!pair) break;
      line = rangeLine(pair.key, lc) ?? line;
      next = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      next = node.items[seg];
    } else break;
    if (next === undefined || next === null) break;
    node = next;
    line = rangeLine(node, lc) ?? line;
  }
  return line;
}

function rangeLine(node: unknown, lc: LineCounter): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lc.linePos(range[0]).line : undefined;
}
