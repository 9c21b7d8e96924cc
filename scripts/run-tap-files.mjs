#!/usr/bin/env node
// Runs test files one after another, each as `node FILE`, and reports each
// as one test point with its own TAP indented under it, as tap's runner
// does (scripts/test-all.mjs reads these lines). The kernel-matrix guests
// use it instead of tap's runner: under TCG the runner and the loader hooks
// it gives every file cost about a minute a file, where a file alone starts
// in about 10 s (measured in a 6.12 guest: 99 s against 11.5 s for a file
// of unit tests).
//
// A file's tests time out after TAP_TIMEOUT seconds (tap's own variable,
// 1800 here unless set); a file still running a minute after that is killed
// and reported failed.
import { spawn } from 'node:child_process';

const files = process.argv.slice(2);
const timeout = Number(process.env.TAP_TIMEOUT ?? 1800);
let failed = 0;
console.log('TAP version 14');
for (const [index, file] of files.entries()) {
  const started = Date.now();
  console.log(`# Subtest: ${file}`);
  const child = spawn(process.execPath, [file], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TAP_TIMEOUT: String(timeout) },
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), (timeout + 60) * 1000);
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    process.stdout.write(lines.map((line) => `    ${line}\n`).join(''));
  });
  const status = await new Promise((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
  clearTimeout(killer);
  if (partial) process.stdout.write(`    ${partial}\n`);
  const ok = status === 0;
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} ${index + 1} - ${file} # time=${Date.now() - started}ms${ok ? '' : ` (exit ${status})`}`);
}
console.log(`1..${files.length}`);
process.exitCode = failed ? 1 : 0;
