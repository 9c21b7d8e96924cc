// The man pages, --help and package.json must tell the same story as the code.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ROOT, runTool } from './helpers.js';

const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string>; man: string[]; version: string };
const tools = Object.keys(pkg.bin);

/** Long options named in a --help text. */
function helpOptions(help: string): Set<string> {
  return new Set([...help.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]));
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
