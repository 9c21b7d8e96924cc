// --prometheus under faults and at its edges: scrapers that go away before,
// during or after the response, 200 scrapes at once, a port already in use,
// an address not this machine's, a malformed address, --print-cgroup with
// it, SIGTERM while scrapes are in flight, SIGINT; where it listens (a bare
// PORT, [::1]:PORT); and that without it node:http is never loaded. The tool
// keeps exporting (or exits as asked) and never crashes. Host only (not
// -e2e): it is about our HTTP side, which no kernel changes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { unseenCompletions } from './bio-helpers.js';
import { checkHistograms, parseExposition } from './exposition-check.js';
import { baseArgs, kernelSnapshot, leftovers, RunningTool, runTool, sleep, startTool, toolArgv, TOOLS } from './helpers.js';

const work = mkdtempSync('/var/tmp/ebpf-tools-exporter-');
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** Starts `tool` exporting on 127.0.0.1 at a port of its choosing; resolves with it and its port. */
async function exporting(tool: string, args: string[] = []): Promise<{ tool: RunningTool; port: number }> {
  const running = startTool(tool, [...baseArgs(tool), ...args, '--prometheus', '127.0.0.1:0']);
  await running.waitForStderr(/serving metrics at \S+\n/);
  return { tool: running, port: Number(/:(\d+)\/metrics$/m.exec(running.stderr)![1]) };
}

/** One scrape on a connection of its own (to 127.0.0.1 unless told): status and body. */
function scrape(port: number, path = '/metrics', host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host, port, path, agent: false }, (response: IncomingMessage) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: response.statusCode!, body }));
    }).on('error', reject).end();
  });
}

/** A raw connection that has sent `text`; resolves once connected and written. */
function rawClient(port: number, text: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text, () => resolve(socket)));
    socket.on('error', reject);
  });
}

const GET = 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n';

/** Execs of /bin/true under `count` distinct names: that many comm series, a body of tens of kilobytes. */
function manyComms(count: number): void {
  for (let i = 0; i < count; i++) {
    const link = join(work, `fc${i}`);
    symlinkSync('/bin/true', link);
    spawnSync(link, [], { stdio: 'ignore' });
  }
}

t.test('scrapers that leave before, during and after the response: the tool keeps exporting', async (t) => {
  const { tool, port } = await exporting('execsnoop', ['--prometheus-comms', '100000']);
  manyComms(1500);
  const first = await scrape(port);
  t.equal(first.status, 200);
  t.ok(first.body.length > 40000, `a body of ${first.body.length} bytes: more than one write`);
  for (let round = 0; round < 100; round++) {
    // the request, then gone at once (a reset before the answer is written)
    (await rawClient(port, GET)).resetAndDestroy();
    // the answer's first bytes read, then a reset mid-body
    const reader = await rawClient(port, GET);
    await new Promise<void>((resolve) => reader.once('data', () => resolve()));
    reader.resetAndDestroy();
    // half a request line, then a close; and garbage
    (await rawClient(port, 'GET /met')).destroy();
    (await rawClient(port, '\x00\xff garbage\r\n\r\n')).end();
    // a complete scrape never read, closed politely
    (await rawClient(port, GET)).end();
  }
  await sleep(200);
  t.equal(tool.proc.exitCode, null, 'still running');
  const marker = join(work, 'fcafter');
  symlinkSync('/bin/true', marker);
  spawnSync(marker, [], { stdio: 'ignore' });
  let after = await scrape(port);
  for (let i = 0; i < 50 && !after.body.includes('comm="fcafter"'); i++) {
    await sleep(100);
    after = await scrape(port);
  }
  t.equal(after.status, 200, 'a normal scrape afterwards');
  t.match(after.body, /^ebpf_tools_execs_total\{comm="fcafter"\} 1$/m, 'and it counts what came after');
  const before = new Map(parseExposition(first.body).map((s) => [JSON.stringify([s.name, s.labels]), s.value]));
  const shrunk = parseExposition(after.body).filter((s) => s.name.endsWith('_total') && (before.get(JSON.stringify([s.name, s.labels])) ?? 0) > s.value);
  t.same(shrunk, [], 'no counter went backwards');
  const done = await tool.stop('SIGTERM');
  t.equal(done.code, 0, 'SIGTERM exits 0');
  t.equal(done.stderr, `execsnoop: serving metrics at http://127.0.0.1:${port}/metrics\n`, 'nothing on stderr but where it served');
});

t.test('200 concurrent scrapes, each on its own connection: all answered in full', async (t) => {
  const { tool, port } = await exporting('biolatency');
  const results = await Promise.all(Array.from({ length: 200 }, () => scrape(port)));
  t.same(results.filter((r) => r.status !== 200).map((r) => r.status), [], 'every one 200');
  const complete = results.filter((r) => /^# HELP ebpf_tools_build_info .*\n[^]*\nebpf_tools_lost_events_total \d+\n/.test(r.body) && r.body.endsWith('\n'));
  t.equal(complete.length, 200, 'every body complete');
  checkHistograms(t, results.at(-1)!.body);
  t.equal((await scrape(port, '/')).status, 404, 'other paths 404');
  const done = await tool.stop('SIGTERM');
  t.equal(done.code, 0, 'SIGTERM exits 0');
  t.same(unseenCompletions('biolatency', done.stderr).otherLines, [`biolatency: serving metrics at http://127.0.0.1:${port}/metrics`], 'nothing on stderr but where it served (and requests reported not traced)');
});

t.test('SIGTERM while scrapes are in flight: exits 0 at once, cleanly', async (t) => {
  const { tool, port } = await exporting('opensnoop');
  // requests half sent (the server waits for the rest), and a scrape storm
  const halfSent = await Promise.all(Array.from({ length: 20 }, () => rawClient(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n')));
  let storming = true;
  const storm = Promise.all(Array.from({ length: 20 }, async () => {
    while (storming) await scrape(port).catch(() => { storming = false; });
  }));
  await sleep(300);
  const sent = Date.now();
  const done = await tool.stop('SIGTERM');
  const took = Date.now() - sent;
  storming = false;
  await storm;
  for (const socket of halfSent) socket.destroy();
  t.equal(done.code, 0, 'exits 0');
  t.equal(done.signal, null, 'not killed by the signal');
  t.ok(took < 5000, `exits at once (${took} ms)`);
  t.equal(done.stderr, `opensnoop: serving metrics at http://127.0.0.1:${port}/metrics\n`, 'nothing on stderr but where it served');
});

t.test('a port already in use or an address not this machine\'s: one line, exit 1, nothing loaded; a malformed address: exit 2', async (t) => {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const { port } = holder.address() as { port: number };
  // an address of the documentation ranges (RFC 5737) that no interface here has; with
  // ip_nonlocal_bind on, the kernel would bind any address
  const foreign = ['192.0.2.1', '198.51.100.1', '203.0.113.1'].find((a) => !ownAddresses().includes(a));
  t.ok(foreign, `an address not on this machine: ${foreign}`);
  t.equal(readFileSync('/proc/sys/net/ipv4/ip_nonlocal_bind', 'utf8').trim(), '0', 'net.ipv4.ip_nonlocal_bind is 0: a bind to an address not here fails');
  const before = kernelSnapshot();
  for (const tool of TOOLS.filter((name) => name !== 'ebpf-tools')) {
    const inUse = runTool(tool, [...baseArgs(tool), '--prometheus', `127.0.0.1:${port}`]);
    t.equal(inUse.code, 1, `${tool}: port in use exits 1`);
    t.equal(inUse.stderr, `${tool}: cannot serve metrics on 127.0.0.1:${port}: the port is in use: choose another\n`, `${tool}: one line`);
    t.equal(inUse.stdout, '');
    const notHere = runTool(tool, [...baseArgs(tool), '--prometheus', `${foreign}:9560`]);
    t.equal(notHere.code, 1, `${tool}: ${foreign} (not this machine's) exits 1`);
    t.equal(notHere.stderr, `${tool}: cannot serve metrics on ${foreign}:9560: no interface of this machine has that address\n`, `${tool}: one line`);
    t.equal(notHere.stdout, '');
    for (const bad of ['127.0.0.1:65536', '[::1', 'host name:1']) {
      const malformed = runTool(tool, [...baseArgs(tool), '--prometheus', bad]);
      t.equal(malformed.code, 2, `${tool} --prometheus '${bad}': exit 2`);
      t.match(malformed.stderr, new RegExp(`^${tool}: invalid --prometheus .*\\n$`), `${tool}: one line naming the option`);
    }
  }
  for (const tool of ['execsnoop', 'opensnoop', 'biosnoop', 'ext4slower']) {
    const both = runTool(tool, ['--print-cgroup', '--prometheus', '127.0.0.1:0']);
    t.equal(both.code, 2, `${tool}: --print-cgroup with --prometheus is a usage error`);
    t.match(both.stderr, new RegExp(`^${tool}: --print-cgroup only shapes printed output: not with --prometheus \\(--prometheus-cgroups N labels the counters by cgroup\\) \\(see '${tool} --help'\\)\\n$`));
  }
  t.same(await leftovers(before), [], 'nothing loaded');
});

/** Addresses of this machine a client can reach by address alone (IPv6 link-local ones need a zone). */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flat()
    .filter((a) => a !== undefined && !(a.family === 'IPv6' && a.scopeid !== 0)).map((a) => a!.address);
}

/** The socket `pid` listens on at `port`, as ss shows it: its local address, [::1]:P, *:P... */
function listeningOn(pid: number, port: number): string[] {
  const ss = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  if (ss.status !== 0) throw new Error(`ss failed: ${ss.stderr}`);
  return ss.stdout.split('\n').filter((l) => l.includes(`pid=${pid},`)).map((l) => l.split(/\s+/)[3]);
}

t.test('a bare PORT listens on every interface: the wildcard address, answering on each address of this machine', async (t) => {
  const tool = startTool('execsnoop', ['--prometheus', '0']);
  await tool.waitForStderr(/serving metrics at \S+\n/);
  const [, shown, portText] = /serving metrics at http:\/\/(\S+):(\d+)\/metrics$/m.exec(tool.stderr)!;
  const port = Number(portText);
  t.match(shown, /^(\[::\]|0\.0\.0\.0)$/, `the URL names the wildcard address (${shown})`);
  // *: IPv6 and IPv4 (one dual-stack socket), 0.0.0.0: every IPv4 address of a machine without IPv6
  t.same(listeningOn(tool.proc.pid!, port), [shown === '[::]' ? `*:${port}` : `0.0.0.0:${port}`], 'one socket, on the wildcard address (ss)');
  const addresses = ownAddresses();
  t.ok(addresses.includes('127.0.0.1') && addresses.includes('::1'), `both loopback addresses, among ${addresses.join(' ')}`);
  t.ok(addresses.some((a) => a !== '127.0.0.1' && a !== '::1'), 'an address beyond the loopback ones (a network interface up), to scrape at');
  for (const address of addresses) {
    const answer = await scrape(port, '/metrics', address);
    t.equal(answer.status, 200, `scraped at ${address}`);
    t.match(answer.body, /^ebpf_tools_build_info\{tool="execsnoop",/m);
  }
  const done = await tool.stop('SIGTERM');
  t.equal(done.code, 0);
  t.equal(done.stderr, `execsnoop: serving metrics at http://${shown}:${port}/metrics\n`, 'nothing on stderr but where it served');
});

t.test('[::1]:PORT: served on the IPv6 loopback end to end, and there only', async (t) => {
  // the IPv6 loopback is part of a normal Linux machine: if it is missing (IPv6 off), say how to give it back
  const loopback6 = /^0{31}1 [0-9a-f ]+ lo$/m.test(readFileSync('/proc/net/if_inet6', 'utf8'));
  t.ok(loopback6, 'this machine has ::1 on lo (else: sysctl net.ipv6.conf.lo.disable_ipv6=0; ip -6 addr add ::1/128 dev lo)');
  if (!loopback6) return;
  const tool = startTool('biolatency', ['--prometheus', '[::1]:0']);
  await tool.waitForStderr(/serving metrics at \S+\n/);
  const port = Number(/^biolatency: serving metrics at http:\/\/\[::1\]:(\d+)\/metrics$/m.exec(tool.stderr)?.[1]);
  t.ok(port > 0, `the URL names [::1] and the port bound: ${tool.stderr}`);
  t.same(listeningOn(tool.proc.pid!, port), [`[::1]:${port}`], 'one socket, on ::1 (ss)');
  const answer = await scrape(port, '/metrics', '::1');
  t.equal(answer.status, 200, 'scraped over ::1');
  t.match(answer.body, /^ebpf_tools_build_info\{tool="biolatency",/m);
  t.match(answer.body, /^ebpf_tools_lost_events_total 0$/m);
  await t.rejects(scrape(port, '/metrics', '127.0.0.1'), { code: 'ECONNREFUSED' }, 'not on 127.0.0.1');
  const done = await tool.stop('SIGTERM');
  t.equal(done.code, 0);
  t.same(unseenCompletions('biolatency', done.stderr).otherLines, [`biolatency: serving metrics at http://[::1]:${port}/metrics`], 'nothing on stderr but where it served (and requests reported not traced)');
});

t.test('SIGINT (Ctrl-C) while serving: exits 0, cleanly', async (t) => {
  const { tool, port } = await exporting('biosnoop');
  t.equal((await scrape(port)).status, 200, 'serving');
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0, 'exits 0');
  t.equal(done.signal, null, 'not killed by the signal');
  t.equal(done.stdout, '', 'no events printed');
  t.same(unseenCompletions('biosnoop', done.stderr).otherLines, [`biosnoop: serving metrics at http://127.0.0.1:${port}/metrics`], 'nothing on stderr but where it served (and requests reported not traced)');
});

t.test('a terminal run, to its header and Ctrl-C, never loads node:http (nor node:os); the same probe sees node:http loaded with --prometheus', async (t) => {
  // The exporter (common/exporter.ts) is inside each tool's bundle, where a
  // module costs nothing until it runs; what it would cost a terminal run is
  // node:http and what it loads, which Node lists in process.moduleLoadList.
  // The probe, preloaded, writes that list when the process exits.
  const probe = join(work, 'modules-at-exit.mjs');
  writeFileSync(probe, "import { writeFileSync } from 'node:fs';\n" +
    "process.on('exit', () => writeFileSync(process.env.MODULES_AT_EXIT, process.moduleLoadList.join('\\n')));\n");
  let runs = 0;
  const modulesOf = async (tool: string, args: string[], ready: (running: RunningTool) => Promise<unknown>): Promise<string[]> => {
    const list = join(work, `modules-${runs++}`);
    const running = new RunningTool(process.execPath, ['--import', pathToFileURL(probe).href, ...toolArgv(tool, args)], { MODULES_AT_EXIT: list });
    await ready(running);
    const done = await running.stop('SIGINT');
    t.equal(done.code, 0, `${tool} ${args.join(' ')}: Ctrl-C exits 0`);
    return readFileSync(list, 'utf8').split('\n');
  };
  const http = (modules: string[]): string[] => modules.filter((m) => /http/.test(m));
  for (const tool of TOOLS) {
    // the header comes once attached: the run is past where --prometheus would have started the exporter
    const modules = await modulesOf(tool, baseArgs(tool), (running) => running.waitForLine(() => true));
    t.ok(modules.includes('NativeModule fs'), `${tool}: the probe wrote the list (${modules.length} modules)`);
    t.same(http(modules), [], `${tool}: no http module loaded`);
    // what a start took from node:os (errno names, the kernel's release, a user's home) it reads elsewhere or when needed
    t.notOk(modules.includes('NativeModule os'), `${tool}: node:os not loaded`);
  }
  const exporting = await modulesOf('execsnoop', ['--prometheus', '127.0.0.1:0'], (running) => running.waitForStderr(/serving metrics at \S+\n/));
  t.ok(exporting.includes('NativeModule http'), `with --prometheus the probe sees node:http (${http(exporting).length} http modules)`);
});
