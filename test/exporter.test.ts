// The exporter's HTTP side without BPF: an exporter whose collection is a
// fake that throws when told to, in a process of its own (as a tool's is),
// scraped as Prometheus does. A collection that throws (a map that cannot be
// read) answers that scrape 500 and is said once on stderr; the process
// keeps serving.
import t from 'tap';
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { ROOT } from './helpers.js';

/** What each scrape's collection does in turn: a message to throw (an Error's, or a bare string's), or serve. */
type Outcome = { error: string } | { thrown: string } | 'serve';

/**
 * A process serving `outcomes` on 127.0.0.1 at a port of its choosing, as
 * faketool: scrape n gets outcomes[n]; a served one is a counter of the
 * collections so far.
 */
const FAKE_EXPORTER = `
const { Exporter } = await import(${JSON.stringify(`${ROOT}dist/common/exporter.js`)});
const outcomes = JSON.parse(process.env.OUTCOMES);
const exporter = await Exporter.listen('faketool', { listen: { host: '127.0.0.1', port: 0 }, comms: 200, cgroups: 0 });
let collections = 0;
exporter.serveFamilies(() => {
  const outcome = outcomes[collections++];
  if (outcome.error !== undefined) throw new Error(outcome.error);
  if (outcome.thrown !== undefined) throw outcome.thrown;
  return [{ name: 'fake_collections_total', type: 'counter', help: 'collections', samples: [{ labels: {}, value: collections }] }];
});
`;

function scrape(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d: string) => (body += d))
        .on('end', () => resolve({ status: response.statusCode!, type: String(response.headers['content-type']), body }));
    }).on('error', reject);
  });
}

t.test('a collection that throws: that scrape 500 with a one-line body, one stderr line per distinct message, still serving', async (t) => {
  const eio = 'cannot read a BPF map: EIO (input/output error)';
  const twoLines = 'first line\nsecond \x1b[31mline';
  const outcomes: Outcome[] = [
    { error: eio }, { error: eio }, 'serve', { error: eio }, { error: twoLines }, { thrown: 'a bare string' }, { error: eio }, 'serve',
  ];
  const child = spawn(process.execPath, ['--input-type=module', '-e', FAKE_EXPORTER], {
    env: { ...process.env, NODE_OPTIONS: '', OUTCOMES: JSON.stringify(outcomes) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const serving = /^faketool: serving metrics at (\S+)\n/m.exec(stderr);
      if (serving) resolve(serving[1]);
    });
    void exited.then(({ code }) => reject(new Error(`the fake exporter exited (${code}) before serving; stderr:\n${stderr}`)));
  });
  const answers = [];
  for (let i = 0; i < outcomes.length; i++) answers.push(await scrape(url));
  t.same(answers.map((a) => a.status), [500, 500, 200, 500, 500, 500, 500, 200], 'each failed collection 500, the others 200');
  for (const a of answers.filter((x) => x.status === 500)) {
    t.equal(a.type, 'text/plain; charset=utf-8');
    t.match(a.body, /^Cannot collect the metrics: [^\n]*\n$/, `one line: ${JSON.stringify(a.body)}`);
  }
  t.equal(answers[0].body, `Cannot collect the metrics: ${eio}\n`, 'the body says why');
  t.equal(answers[4].body, 'Cannot collect the metrics: first line\\nsecond \\x1b[31mline\n', 'a message of two lines is one, control characters escaped');
  t.match(answers[7].body, /^fake_collections_total 8$/m, 'a collection after the failures serves what it collected');
  t.equal(child.exitCode, null, 'still running after every scrape');
  child.kill('SIGTERM');
  await exited;
  const failureLines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('faketool: serving metrics at '));
  const said = (message: string): string => `faketool: cannot collect the metrics (scrape answered 500, still serving; not repeated): ${message}`;
  t.same(failureLines, [said(eio), said('first line\\nsecond \\x1b[31mline'), said('a bare string')],
    'each distinct message once on stderr, in the order first seen, nothing else');
});
