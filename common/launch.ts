// The entry point behind every bin/ launcher (through its tool's bundle,
// scripts/bundle.mjs). The tool's module (and with it libbpf) is loaded
// inside runMain, so that a missing libbpf is reported as one line with what
// to install, like any other runtime failure. A tool serving several
// commands (fsslower as ext4slower...) is told which ran.
import { runMain } from './cli.js';

export interface ToolModule {
  main(argv: string[], command: string): void | Promise<void>;
}

/** Runs the tool; settles once its main has returned (it has started: loaded, attached, reading). */
export function launch(command: string, load: () => Promise<ToolModule>): Promise<void> {
  return runMain(command, async () => {
    const module = await load();
    await module.main(process.argv.slice(2), command);
  });
}
