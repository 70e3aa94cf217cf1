/**
 * The repo's description of itself stays true: README.md's "Layout" table and docs/architecture.md's
 * "Where each concern lives" table name only folders and files that exist (a folder as `name/`);
 * both name every top-level folder, and the architecture table every folder under agent/,
 * collector/ and common/. Code comments that point into docs/architecture.md by section title name
 * a section it has, and nothing in the repo points to the design notes outside it.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../../..');
const ARCHITECTURE = 'docs/architecture.md';
const README = 'README.md';
/** Folders whose every subfolder (at any depth) the architecture table names. */
const DETAILED = ['agent', 'collector', 'common'];
/** Never part of the tree described: dependencies and build output. */
const NOT_SOURCE = new Set(['node_modules', 'dist', 'build']);
/** Files read for section pointers and outside references. */
const TEXT_FILE = /\.(ts|js|c|h|md|ya?ml|json|gyp)$|(^|\/)(Makefile|Containerfile)$/;

type Kind = 'dir' | 'file' | undefined;
type Exists = (repoPath: string) => Kind;

interface Row {
  /** 1-based line in the markdown file */
  line: number;
  /** backticked tokens of the first column: the paths the row is about */
  paths: string[];
  /** path-like backticked tokens of the other columns, relative to the row's folder or the repo */
  mentions: string[];
}

const backticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** A token that names a file or folder: `dir/`, a file with a source extension, a Makefile. */
function isPathLike(token: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/.test(token) && (token.endsWith('/') || TEXT_FILE.test(token));
}

/** The rows of the first table after the heading `title` (any level), header and rule left out. */
function tableUnder(markdown: string, title: string): Row[] {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, '').trim() === title);
  if (at < 0) throw new Error(`no heading "${title}"`);
  let i = at + 1;
  while (i < lines.length && !lines[i]!.startsWith('|')) {
    if (/^#{1,6} /.test(lines[i]!)) break;
    i++;
  }
  if (i === lines.length || !lines[i]!.startsWith('|')) throw new Error(`no table under "${title}"`);
  const rows: Row[] = [];
  for (let n = 0; i < lines.length && lines[i]!.startsWith('|'); i++, n++) {
    if (n < 2) continue; // header and |---| rule
    const cells = lines[i]!.trim().replace(/^\||\|$/g, '').split('|');
    rows.push({ line: i + 1, paths: backticked(cells[0] ?? ''), mentions: cells.slice(1).flatMap(backticked).filter(isPathLike) });
  }
  return rows;
}

/** What is wrong with the rows of `file`, one line each. */
function rowProblems(file: string, rows: readonly Row[], exists: Exists): string[] {
  const out: string[] = [];
  if (rows.length === 0) out.push(`${file}: the table has no rows`);
  for (const r of rows) {
    if (r.paths.length === 0) out.push(`${file}:${r.line}: the first column names no path`);
    for (const p of r.paths) {
      const kind = isPathLike(p) ? exists(p) : undefined;
      if (!isPathLike(p)) out.push(`${file}:${r.line}: \`${p}\` is not a path (a folder is written \`name/\`)`);
      else if (kind === undefined) out.push(`${file}:${r.line}: \`${p}\` does not exist`);
      else if (p.endsWith('/') !== (kind === 'dir')) out.push(`${file}:${r.line}: \`${p}\` is a ${kind === 'dir' ? 'folder' : 'file'}`);
    }
    const bases = ['', ...r.paths.map((p) => (p.endsWith('/') ? p : `${path.posix.dirname(p)}/`))];
    for (const m of r.mentions) {
      const found = bases.some((b) => {
        const kind = exists(b + m);
        return kind !== undefined && m.endsWith('/') === (kind === 'dir');
      });
      if (!found) out.push(`${file}:${r.line}: \`${m}\` is neither in ${r.paths.map((p) => `\`${p}\``).join(', ') || 'the row'} nor at the top of the repo`);
    }
  }
  return out;
}

/** Folders of `required` that no row names in its first column. */
function missingFolders(file: string, rows: readonly Row[], required: readonly string[]): string[] {
  const named = new Set(rows.flatMap((r) => r.paths));
  return required.filter((d) => !named.has(d)).map((d) => `${file}: no row for \`${d}\``);
}

/** The section titles `text` points to: the file name, then the title in double quotes (comment line breaks joined). */
function sectionPointers(text: string): string[] {
  const joined = text.replace(/\n[ \t]*(?:\*|\/\/|#)?[ \t]*/g, ' ');
  return [...joined.matchAll(/docs\/architecture\.md,? "([^"]+)"/g)].map((m) => m[1]!);
}

const headings = (markdown: string): Set<string> =>
  new Set(markdown.split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) => l.replace(/^#+ /, '').trim()));

// ---- the real tree ---------------------------------------------------------------------------

const existsInRepo: Exists = (p) => {
  try {
    const st = fs.statSync(path.join(REPO, p.replace(/\/$/, '')));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
};

const read = (p: string): string => fs.readFileSync(path.join(REPO, p), 'utf8');

const isSourceDir = (e: fs.Dirent): boolean => e.isDirectory() && !e.name.startsWith('.') && !NOT_SOURCE.has(e.name);

function topLevelFolders(): string[] {
  return fs.readdirSync(REPO, { withFileTypes: true }).filter(isSourceDir).map((e) => `${e.name}/`).sort();
}

/** Every folder below `dir` (repo-relative, `a/b/`), at any depth. */
function foldersBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    if (!isSourceDir(e)) continue;
    const sub = `${dir}/${e.name}`;
    out.push(`${sub}/`, ...foldersBelow(sub));
  }
  return out.sort();
}

/** The repo's text files (repo-relative), without dependencies and build output. */
function textFiles(dir = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const p = dir ? `${dir}/${e.name}` : e.name;
    if (e.name.startsWith('.') || NOT_SOURCE.has(e.name)) continue;
    if (e.isDirectory()) out.push(...textFiles(p));
    else if (e.isFile() && TEXT_FILE.test(p)) out.push(p);
  }
  return out;
}

describe('layout tables', () => {
  describe('on a made-up tree', () => {
    const tree: Record<string, Kind> = { agent: 'dir', 'agent/a.ts': 'file', 'agent/sub': 'dir', 'agent/sub/b.ts': 'file', 'README.md': 'file' };
    const exists: Exists = (p) => tree[p.replace(/\/$/, '')];
    const doc = [
      '# Doc',
      '## Where',
      'text',
      '| path | concern |',
      '|---|---|',
      '| `agent/` | `a.ts`, `sub/b.ts`, `README.md`, `c.ts`, `palisade.dev/workload` |',
      '| `agent/missing.ts` | gone |',
      '| `agent/a.ts/` | a file written as a folder |',
      '| `agent` | no slash |',
      '## Next',
    ].join('\n');

    it('reads the table under a heading, with its paths and the path-like words of the other columns', () => {
      const rows = tableUnder(doc, 'Where');
      assert.deepEqual(rows[0], { line: 6, paths: ['agent/'], mentions: ['a.ts', 'sub/b.ts', 'README.md', 'c.ts'] });
      assert.equal(rows.length, 4);
      assert.throws(() => tableUnder(doc, 'Next'), /no table under "Next"/);
    });

    it('names every path that does not exist or is not what it is written as', () => {
      assert.deepEqual(rowProblems('doc.md', tableUnder(doc, 'Where'), exists), [
        'doc.md:6: `c.ts` is neither in `agent/` nor at the top of the repo',
        'doc.md:7: `agent/missing.ts` does not exist',
        'doc.md:8: `agent/a.ts/` is a file',
        'doc.md:9: `agent` is not a path (a folder is written `name/`)',
      ]);
    });

    it('names every required folder without a row', () => {
      assert.deepEqual(missingFolders('doc.md', tableUnder(doc, 'Where'), ['agent/', 'agent/sub/']), ['doc.md: no row for `agent/sub/`']);
    });

    it('finds section pointers across comment lines', () => {
      const code = '/**\n * The rest is in docs/architecture.md\n * "Flows", and docs/architecture.md, "The picture".\n */';
      assert.deepEqual(sectionPointers(code), ['Flows', 'The picture']);
    });
  });

  describe('of this repo', () => {
    const architecture = read(ARCHITECTURE);
    const concerns = tableUnder(architecture, 'Where each concern lives');
    const layout = tableUnder(read(README), 'Layout');

    it(`${ARCHITECTURE} "Where each concern lives" names only what exists`, () => {
      assert.deepEqual(rowProblems(ARCHITECTURE, concerns, existsInRepo), []);
    });

    it(`${ARCHITECTURE} "Where each concern lives" has a row for every top-level folder and every folder under ${DETAILED.join('/, ')}/`, () => {
      const required = [...topLevelFolders(), ...DETAILED.flatMap(foldersBelow)];
      assert.ok(required.includes('agent/proxy/http/'), `the walk found ${required.join(', ')}`);
      assert.deepEqual(missingFolders(ARCHITECTURE, concerns, required), []);
    });

    it(`${README} "Layout" names only what exists, and every top-level folder`, () => {
      assert.deepEqual([...rowProblems(README, layout, existsInRepo), ...missingFolders(README, layout, topLevelFolders())], []);
    });

    it(`points into ${ARCHITECTURE} only by section titles it has`, () => {
      const titles = headings(architecture);
      const bad: string[] = [];
      let pointers = 0;
      // The architecture's own text may show the form of a pointer; what counts is the code's.
      for (const file of textFiles().filter((f) => f !== ARCHITECTURE)) {
        for (const title of sectionPointers(read(file))) {
          pointers++;
          if (!titles.has(title)) bad.push(`${file}: "${title}" is not a section of ${ARCHITECTURE}`);
        }
      }
      assert.ok(pointers > 0, `no file points into ${ARCHITECTURE} by section title`);
      assert.deepEqual(bad, []);
      assert.match(read(README), /docs\/architecture\.md/, `${README} points to ${ARCHITECTURE}`);
    });

    it('does not point to the design notes outside the repo', () => {
      const outside = ['DESIGN' + '.md', '../' + 'shared/'];
      const bad = textFiles().filter((f) => outside.some((o) => read(f).includes(o)));
      assert.deepEqual(bad, []);
    });
  });
});
