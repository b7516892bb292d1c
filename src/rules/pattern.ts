/*
 * A pattern in the config is either `/regex/flags` or a plain string matched as a case-insensitive
 * substring. Plain strings are the common case ("googleplay-noreply@google.com", "receipt") and
 * must not surprise anyone who does not know regex syntax: "." and "+" are just characters there.
 * The cost: a substring that starts with "/" and ends with "/" or "/letters" is read as a regex;
 * write such text as a regex with escaped slashes (/\/usr\/bin/).
 */

export interface CompiledPattern {
  /** Whether `s` matches; never depends on earlier calls, whatever the flags. */
  test(s: string): boolean;
  /** The pattern as written in the config, for messages. */
  source: string;
  kind: "regex" | "substring";
}

const validFlags = "dgimsuvy";
const regexForm = "/regex/flags, e.g. /receipt\\s+#\\d+/i";

/** Splits `/body/flags` into its parts; undefined when `p` is not written in that form. */
export function parseRegexLiteral(p: string): { body: string; flags: string } | undefined {
  const m = /^\/([\s\S]+)\/([A-Za-z]*)$/.exec(p);
  if (!m) return undefined;
  return { body: m[1]!, flags: m[2]! };
}

/**
 * new RegExp without the throw: the error names the regex, what is wrong with it and the form.
 * `shown` is how the regex appears in the config, for the message.
 */
export function compileRegex(body: string, flags: string, shown = `/${body}/${flags}`): RegExp | { error: string } {
  const bad = [...flags].filter((f) => !validFlags.includes(f));
  if (bad.length > 0) {
    return { error: `invalid regex flag${bad.length > 1 ? "s" : ""} ${bad.map((f) => `"${f}"`).join(", ")} in ${shown}: valid flags are ${[...validFlags].join(" ")} (to look for text with slashes in it, escape them: /\\/usr\\/bin/)` };
  }
  const uniqueFlags = [...new Set(flags)].join("");
  try {
    return new RegExp(body, uniqueFlags);
  } catch (err) {
    // V8 says "Invalid regular expression: /(abc/: Unterminated group"; keep only the reason.
    const reason = err instanceof Error ? err.message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, "") : String(err);
    return { error: `invalid regex ${shown}: ${reason}. Write it as ${regexForm}` };
  }
}

/**
 * Runs `re` from the start of `s` whatever its flags: `g` and `y` make RegExp methods remember
 * lastIndex between calls, and a match must not depend on the previous mail. With `y` the match
 * must start at the beginning of `s`.
 */
export function execFromStart(re: RegExp, s: string): RegExpExecArray | null {
  re.lastIndex = 0;
  return re.exec(s);
}

/** `/regex/flags` or a case-insensitive substring; see the note at the top of this file. */
export function compilePattern(p: string): CompiledPattern | { error: string } {
  const literal = parseRegexLiteral(p);
  if (literal) {
    const re = compileRegex(literal.body, literal.flags, p);
    if (!(re instanceof RegExp)) return re;
    return { kind: "regex", source: p, test: (s) => execFromStart(re, s) !== null };
  }
  if (p.length === 0) return { error: "empty pattern: write a substring to look for, or /regex/flags" };
  const needle = p.toLowerCase();
  return { kind: "substring", source: p, test: (s) => s.toLowerCase().includes(needle) };
}

export function isPatternError(p: CompiledPattern | { error: string }): p is { error: string } {
  return "error" in p;
}
