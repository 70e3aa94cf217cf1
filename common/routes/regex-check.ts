/**
 * Regular expressions in routes run on every request with V8's backtracking engine, so only the
 * RE2 class is accepted: no backreferences, no lookaround, and no quantified group that itself
 * holds a quantifier or an alternation (the shapes that backtrack exponentially, `(a+)+`,
 * `(a|aa)*`). Pure; the answer is the reason a pattern is refused, or undefined.
 */

export const MAX_REGEX_LENGTH = 1024;

export function regexProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'is empty';
  if (pattern.length > MAX_REGEX_LENGTH) return `is longer than ${MAX_REGEX_LENGTH} characters`;
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    return `is not a valid regular expression (${(err as Error).message.replace(/^Invalid regular expression: /, '').slice(0, 120)})`;
  }
  /** per open group: saw a quantifier or alternation inside */
  const stack: { risky: boolean; start: number }[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) return 'uses a backreference (not RE2: matching could take exponential time)';
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      continue;
    }
    if (c === '(') {
      const ahead = pattern.slice(i, i + 4);
      if (ahead.startsWith('(?=') || ahead.startsWith('(?!') || ahead.startsWith('(?<=') || ahead.startsWith('(?<!')) {
        return 'uses a lookaround (not RE2: matching could take exponential time)';
      }
      stack.push({ risky: false, start: i });
      if (pattern[i + 1] === '?') {
        // (?:…) or (?<name>…): skip the prefix, whose '?' is no quantifier
        const close = pattern[i + 2] === '<' ? pattern.indexOf('>', i) : i + 2;
        i = close < 0 ? i + 2 : close;
      }
      continue;
    }
    if (c === ')') {
      const group = stack.pop();
      if (group === undefined) continue;
      const quantified = isQuantifier(pattern, i + 1);
      if (group.risky && quantified) return `repeats a group that itself repeats or alternates (${JSON.stringify(pattern.slice(group.start, i + 2).slice(0, 40))}: matching could take exponential time)`;
      const parent = stack[stack.length - 1];
      if (parent && (group.risky || quantified)) parent.risky = true;
      continue;
    }
    if (c === '|' || isQuantifier(pattern, i)) {
      const top = stack[stack.length - 1];
      if (top) top.risky = true;
    }
  }
  return undefined;
}

function isQuantifier(p: string, i: number): boolean {
  const c = p[i];
  return c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d+(,\d*)?\}/.test(p.slice(i)));
}

/** A whole-string matcher for an accepted pattern. */
export function wholeMatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'su');
}
