// The man pages, --help and package.json must tell the same story as the code.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { checkHistograms, parseExposition, promtool } from './exposition-check.js';
import { ROOT, runTool, sleep, startTool } from './helpers.js';

const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string>; man: string[]; version: string };
const tools = Object.keys(pkg.bin);

/** Long options named in a --help text. */
function helpOptions(help: string): Set<string> {
  // short names first: one letter, or argp's -? (-h, -?, --help)
  return new Set([...help.matchAll(/^\s+(?:-[\w?], )*(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]));
}

/** Long options documented in a man page's OPTIONS section. */
function manOptions(page: string): Set<string> {
  const section = page.split(/^\.SH /m).find((s) => s.startsWith('OPTIONS')) ?? '';
  const names = [...section.matchAll(/^\.(?:TP\n)?\.B[IR]? .*?(\\-\\-[a-z][a-z0-9\\-]*)/gm)].map((m) => m[1].replace(/\\-/g, '-'));
  return new Set(names);
}

for (const tool of tools) {
  t.test(`${tool}: man page, --help and --version agree`, async (t) => {
    t.ok(pkg.man.includes(`man/man8/${tool}.8`), 'listed in package.json man');
    // a further name of a tool is a .so link to its page (ext4slower.8: .so man8/fsslower.8), as man-db reads it
    const stub = readFileSync(`${ROOT}man/man8/${tool}.8`, 'utf8');
    const link = /^\.so (man8\/[a-z0-9]+\.8)\n$/.exec(stub);
    const manPath = `${ROOT}man/${link ? link[1] : `man8/${tool}.8`}`;
    const page = readFileSync(manPath, 'utf8');
    if (link) t.match(page, new RegExp(`^\\.SH NAME\n.*\\b${tool}\\b.* \\\\- `, 'm'), `${link[1]} names ${tool}`);
    const groff = spawnSync('groff', ['-ww', '-man', '-z', manPath], { encoding: 'utf8' });
    t.equal(groff.status, 0, 'groff runs');
    t.equal(groff.stderr, '', 'groff -ww has no warnings');
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'REQUIREMENTS', 'OPTIONS', 'EXAMPLES', 'FIELDS', 'EXIT STATUS', 'SEE ALSO']) {
      t.match(page, new RegExp(`^\\.SH "?${section}"?$`, 'm'), `has ${section}`);
    }
    const help = runTool(tool, ['--help']);
    t.equal(help.code, 0, '--help exits 0');
    t.match(help.stdout, /^EXAMPLES:$/m, '--help has EXAMPLES');
    const inHelp = helpOptions(help.stdout);
    const inMan = manOptions(page);
    t.ok(inHelp.size > 3, 'options found in --help');
    t.same([...inHelp].filter((o) => !inMan.has(o)).sort(), [], 'every --help option is in the man page');
    t.same([...inMan].filter((o) => !inHelp.has(o)).sort(), [], 'every man page option is in --help');
    const completion = runTool(tool, ['completion']);
    t.match(completion.stdout, new RegExp(`complete .*${tool}`), 'prints a shell completion script');
    const words = runTool(tool, ['--get-yargs-completions', tool, '--']).stdout.split('\n');
    t.same([...inHelp].filter((o) => !words.includes(o)), [], 'completion offers every option');
    const version = runTool(tool, ['--version']);
    t.equal(version.code, 0);
    t.equal(version.stdout.trim(), pkg.version, '--version prints the package version');
  });
}

t.test('the attach plan tables of README and man pages are scripts/plan-table.mjs\'s output for the committed matrix results', async (t) => {
  const r = spawnSync(process.execPath, [`${ROOT}scripts/plan-table.mjs`, '--check'], { encoding: 'utf8' });
  t.equal(r.stderr, '');
  t.equal(r.status, 0);
});

/**
 * The metrics a man page's METRICS section lists, as name{label,...} with
 * the labels sorted (an optional one, [,cgroup], included); \fIFS\fR in a name is `fs`.
 */
export function manMetrics(page: string, fs: string): string[] {
  const section = page.split(/^\.SH /m).find((s) => s.startsWith('METRICS')) ?? '';
  return [...section.matchAll(/^\.B (ebpf_tools_\S*?)(?:\{([^}]*)\})?$/gm)].map(([, name, labels]) =>
    metricKey(name.replace(/\\fI(FS)\\fB/g, fs).replace(/\\f[BIRP]/g, ''), labels ? labels.replace(/[[\]]/g, '').split(',') : []));
}

const metricKey = (name: string, labels: string[]): string => `${name}{${[...labels].sort().join(',')}}`;

/** What exposition text serves, as manMetrics gives it: histograms by their family name, without le. */
function servedMetrics(text: string): { families: string[]; metrics: string[] } {
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const metrics = new Set<string>();
  for (const sample of parseExposition(text)) {
    const family = types.has(sample.name) ? sample.name : sample.name.replace(/_(bucket|sum|count)$/, '');
    metrics.add(metricKey(family, Object.keys(sample.labels).filter((l) => family === sample.name || l !== 'le')));
  }
  return { families: [...types.keys()], metrics: [...metrics] };
}

function scrapeText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Each man page with METRICS, and how to run its tool so that it serves every metric listed. */
const EXPORTERS: { page: string; command: string; args: string[]; fs?: string }[] = [
  { page: 'execsnoop', command: 'execsnoop', args: ['-x', '--prometheus-cgroups', '10'] },
  { page: 'opensnoop', command: 'opensnoop', args: ['--prometheus-cgroups', '10'] },
  { page: 'biolatency', command: 'biolatency', args: [] },
  { page: 'biosnoop', command: 'biosnoop', args: ['--prometheus-cgroups', '10'] },
  { page: 'fsslower', command: 'ext4slower', args: ['--prometheus-cgroups', '10', '0'], fs: 'ext4' },
];

t.test('each man page\'s METRICS lists exactly the metrics and labels its tool serves; promtool and our checks accept every scrape', async (t) => {
  // on the root file system (ext4 here), so that writes reach ext4 and the disk
  const work = mkdtempSync('/var/tmp/ebpf-tools-docs-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  /** One of everything counted: an exec, a failed exec, a failed open, an ext4 write and fsync, block I/O. */
  const workload = (): void => {
    spawnSync('/bin/true');
    spawnSync(join(work, 'no-such-program'));
    spawnSync('/bin/cat', [join(work, 'no-such-file')], { stdio: 'ignore' });
    const fd = openSync(join(work, 'data'), 'w');
    writeSync(fd, Buffer.alloc(65536, 1));
    fsyncSync(fd);
    closeSync(fd);
  };
  for (const { page, command, args, fs } of EXPORTERS) {
    const documented = manMetrics(readFileSync(`${ROOT}man/man8/${page}.8`, 'utf8'), fs ?? '');
    t.ok(documented.length >= 3, `${page}.8 lists metrics`);
    const tool = startTool(command, [...args, '--prometheus', '127.0.0.1:0']);
    await tool.waitForStderr(/serving metrics at \S+\n/);
    const url = /serving metrics at (\S+)$/m.exec(tool.stderr)![1];
    /** A scrape, checked as the unit tests check exposition text built by hand: promtool, and our histogram checks. */
    const scrape = async (): Promise<string> => {
      const text = await scrapeText(url);
      const check = promtool(text);
      t.equal(check.status, 0, `${command}: promtool check metrics accepts what it served${check.output ? `: ${check.output}` : ''}`);
      checkHistograms(t, text);
      return text;
    };
    let served = servedMetrics(await scrape());
    // a family's labels are known from its first sample: do each thing until every family has one
    for (let i = 0; i < 50 && served.families.some((f) => !served.metrics.some((m) => m.startsWith(`${f}{`))); i++) {
      workload();
      await sleep(100);
      served = servedMetrics(await scrape());
    }
    t.same([...served.metrics].sort(), [...documented].sort(), `${command} ${args.join(' ')}: served = ${page}.8 METRICS`);
    t.equal((await tool.stop('SIGTERM')).code, 0);
  }
});
