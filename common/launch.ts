// The entry point behind every bin/ launcher. The tool's module (and with it
// libbpf) is imported inside runMain, so that a missing libbpf is reported
// as one line with what to install, like any other runtime failure. A tool
// serving several commands (fsslower as ext4slower...) is told which ran.
import { runMain } from './cli.js';
import { toolOf } from './commands.js';

export function launch(command: string): void {
  runMain(command, async () => {
    const module = (await import(`../tools/${toolOf(command)}.js`)) as { main(argv: string[], command: string): void | Promise<void> };
    await module.main(process.argv.slice(2), command);
  });
}
