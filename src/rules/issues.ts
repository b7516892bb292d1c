import type { ConfigIssue } from "../errors.ts";

/**
 * `match.headers` + `List-Id` → `match.headers["List-Id"]`: keys that are not identifiers are
 * quoted so the path still reads as one key when it has dots or dashes in it.
 */
export function childPath(base: string, key: string): string {
  const part = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return base === "" ? part.replace(/^\./, "") : `${base}${part}`;
}

/** Issues found in a part of the config, moved under `prefix` (`rules[2]` + `match.subject`). */
export function underPath(prefix: string, issues: readonly ConfigIssue[]): ConfigIssue[] {
  return issues.map((issue) => ({ ...issue, path: issue.path === "" ? prefix : issue.path.startsWith("[") ? `${prefix}${issue.path}` : `${prefix}.${issue.path}` }));
}

/** Levenshtein distance, for "did you mean" hints on short names. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The closest candidate when it is close enough to be a typo, for "did you mean …?". */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
