// The entry point behind every bin/ launcher. The tool's module (and with it
// libbpf) is imported inside runMain, so that a missing libbpf is reported
// as one line with what to install, like any other runtime failure.
import { runMain } from './cli.js';

export function launch(tool: string): void {
  runMain(tool, async () => {
    const module = (await import(`../tools/${tool}.js`)) as { main(argv: string[]): void };
    module.main(process.argv.slice(2));
  });
}
