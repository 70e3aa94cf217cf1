/**
 * A strict reader of the Prometheus text exposition format (0.0.4), enough to check what the
 * agent serves: HELP/TYPE lines, samples with escaped label values, histogram families
 * (_bucket with le, _sum, _count; cumulative buckets; +Inf = count), no duplicate series.
 * Throws on anything it does not understand.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePromText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)/.test(line)) throw new Error(`${at}: malformed ${line}`);
        return; // a comment
      }
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`${at}: bad metric name ${name}`);
      const f = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${at}: bad type ${rest}`);
        if (f.samples.length) throw new Error(`${at}: TYPE after samples of ${name}`);
        f.type = rest;
      } else f.help = rest;
      families.set(name, f);
      return;
    }
    const s = parseSample(line, at);
    const key = `${s.name}{${Object.entries(s.labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (seen.has(key)) throw new Error(`${at}: duplicate series ${key}`);
    seen.add(key);
    const family = familyOf(families, s.name);
    if (!family) throw new Error(`${at}: sample ${s.name} of no declared family`);
    family.samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const f = m ? families.get(m[1]!) : undefined;
  return f && (f.type === 'histogram' || f.type === 'summary') ? f : undefined;
}

function parseSample(line: string, at: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  if (!METRIC_NAME.test(name)) throw new Error(`${at}: bad metric name ${name}`);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      let j = i;
      while (j < line.length && line[j] !== '=') j++;
      const lname = line.slice(i, j);
      if (!LABEL_NAME.test(lname)) throw new Error(`${at}: bad label name ${lname}`);
      if (line[j + 1] !== '"') throw new Error(`${at}: label value not quoted`);
      let v = '';
      j += 2;
      for (;;) {
        const c = line[j];
        if (c === undefined) throw new Error(`${at}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[j + 1];
          if (e === '\\') v += '\\';
          else if (e === '"') v += '"';
          else if (e === 'n') v += '\n';
          else throw new Error(`${at}: bad escape \\${e}`);
          j += 2;
        } else {
          v += c;
          j++;
        }
      }
      if (lname in labels) throw new Error(`${at}: label ${lname} twice`);
      labels[lname] = v;
      i = j + 1;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`${at}: expected , or } after a label`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`${at}: expected a space before the value`);
  const parts = line.slice(i + 1).split(' ');
  if (parts.length > 2 || (parts[1] !== undefined && !/^-?\d+$/.test(parts[1]))) throw new Error(`${at}: bad value/timestamp`);
  const raw = parts[0]!;
  const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
  if (raw === '' || (Number.isNaN(value) && raw !== 'NaN')) throw new Error(`${at}: bad value ${raw}`);
  return { name, labels, value };
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const h = series.get(key) ?? { buckets: [] };
    series.set(key, h);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      h.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${f.name}_sum`) h.sum = s.value;
    else if (s.name === `${f.name}_count`) h.count = s.value;
    else throw new Error(`${f.name}: unexpected sample ${s.name}`);
  }
  for (const h of series.values()) {
    if (h.sum === undefined || h.count === undefined) throw new Error(`${f.name}: series without _sum or _count`);
    const b = h.buckets.sort((x, y) => x[0] - y[0]);
    if (b.at(-1)?.[0] !== Infinity) throw new Error(`${f.name}: no +Inf bucket`);
    for (let i = 1; i < b.length; i++) if (b[i]![1] < b[i - 1]![1]) throw new Error(`${f.name}: buckets not cumulative`);
    if (b.at(-1)![1] !== h.count) throw new Error(`${f.name}: +Inf bucket is not the count`);
  }
}

/** The one sample of `name` whose labels include `match`. */
export function sample(families: Map<string, Family>, name: string, match: Record<string, string> = {}): Sample | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) return s;
    }
  }
  return undefined;
}
