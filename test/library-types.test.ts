/**
 * The library's types as a user's project sees them: the declarations `tsc -p tsconfig.build.json`
 * ships, installed as node_modules/mailbell, and a consumer that imports only from "mailbell".
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import ts from "typescript";

const root = path.resolve(import.meta.dirname, "..");
const project = mkdtempSync(path.join(tmpdir(), "mailbell-consumer-"));
const installed = path.join(project, "node_modules/mailbell");
const entry = path.join(installed, "dist/index.d.ts");
const readme = readFileSync(path.join(root, "README.md"), "utf8");

/** Declarations only, as `npm install` would build them; node_modules is the project's own. */
async function install(): Promise<void> {
  mkdirSync(installed, { recursive: true });
  copyFileSync(path.join(root, "package.json"), path.join(installed, "package.json"));
  symlinkSync(path.join(root, "node_modules"), path.join(installed, "node_modules"));
  const tsc = path.join(root, "node_modules/typescript/bin/tsc");
  await promisify(execFile)(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json"), "--emitDeclarationOnly", "--sourceMap", "false", "--outDir", path.join(installed, "dist")]);
  writeFileSync(path.join(project, "package.json"), JSON.stringify({ type: "module" }));
}

const consumerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2023,
  lib: ["lib.es2023.d.ts"],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  types: ["node"],
  typeRoots: [path.join(root, "node_modules/@types")],
};

function compile(files: Record<string, string>): string[] {
  const names = Object.entries(files).map(([name, text]) => {
    writeFileSync(path.join(project, name), text);
    return path.join(project, name);
  });
  const program = ts.createProgram(names, consumerOptions);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : "";
    return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
  });
}

/**
 * Every type of ours that an exported declaration names, directly or through another such type,
 * and that the entry does not export: a user can meet it in a hover or an error, but not name it.
 */
function unreachableTypes(): string[] {
  const program = ts.createProgram([entry], consumerOptions);
  const checker = program.getTypeChecker();
  const resolve = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const ours = (d: ts.Node): boolean => d.getSourceFile().fileName.startsWith(installed);
  const exported = new Set(checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!).map(resolve));
  const missing = new Map<string, string>();
  const queue = [...exported];
  const seen = new Set<ts.Symbol>();
  const visit = (node: ts.Node, owner: string): void => {
    const named = ts.isTypeReferenceNode(node) ? node.typeName : ts.isExpressionWithTypeArguments(node) ? node.expression : ts.isTypeQueryNode(node) ? node.exprName : ts.isImportTypeNode(node) ? node.qualifier : undefined;
    const symbol = named && checker.getSymbolAtLocation(named);
    if (symbol && !(symbol.flags & ts.SymbolFlags.TypeParameter)) {
      const target = resolve(symbol);
      if (target.declarations?.some(ours)) {
        if (!exported.has(target) && !missing.has(target.name)) missing.set(target.name, owner);
        queue.push(target);
      }
    }
    ts.forEachChild(node, (child) => visit(child, owner));
  };
  for (let symbol = queue.pop(); symbol; symbol = queue.pop()) {
    if (seen.has(symbol)) continue;
    seen.add(symbol);
    for (const declaration of symbol.declarations ?? []) if (ours(declaration)) visit(declaration, symbol.name);
  }
  return [...missing].map(([name, owner]) => `${name} (named by ${owner})`).sort();
}

describe('the library\'s types, as a project that installed "mailbell" sees them', () => {
  before(install);
  after(() => rmSync(project, { recursive: true, force: true }));

  it("every type a public declaration names can be imported from the entry", () => {
    assert.deepEqual(unreachableTypes(), []);
  });

  it("names each type the issue found missing, and takes console as the logger", () => {
    const consumer = `
      import { watchMailbox, ConnectGate, MailbellError, ImapError, type Credentials, type ErrorCode, type DecodeParts, type ConnectGateOptions, type LogSink, type WatchOptions } from "mailbell";
      const credentials = async (refused: boolean): Promise<Credentials> => (refused ? { accessToken: "fresh" } : { pass: "pw" });
      const code: ErrorCode = new MailbellError("IMAP_AUTH", "no").code;
      const decode: DecodeParts = async () => [];
      const gateOptions: ConnectGateOptions = { concurrency: 2 };
      const sink: LogSink = console;
      const options: WatchOptions = { account: { host: "h", user: "u", credentials }, mailbox: "INBOX", decode, logger: console, connectGate: new ConnectGate(gateOptions) };
      void watchMailbox(options);
      void [code, sink, ImapError];
    `;
    assert.deepEqual(compile({ "types.ts": consumer }), []);
  });

  it("ConfigError and TargetError stay the daemon's", () => {
    const diagnostics = compile({ "daemon-only.ts": `import { ConfigError, TargetError } from "mailbell";\nvoid [ConfigError, TargetError];\n` });
    assert.equal(diagnostics.length, 2, diagnostics.join("\n"));
    for (const d of diagnostics) assert.match(d, /has no exported member '(ConfigError|TargetError)'/);
  });

  it("the README's library examples type-check as a user's code", () => {
    const section = readme.slice(readme.indexOf("## As a library"), readme.indexOf("\n## ", readme.indexOf("## As a library") + 1));
    const examples = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(examples.length >= 2, "the single-mailbox and the several-mailboxes examples");
    assert.deepEqual(compile(Object.fromEntries(examples.map((text, i) => [`readme-${i}.ts`, text]))), []);
  });
});
