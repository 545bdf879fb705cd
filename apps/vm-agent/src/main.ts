#!/usr/bin/env node
// uve-vm-agent: runs one UVE VM in this process (see `--help` and docs/vm-agent.md).
import { ConfigError, helpText, loadConfig } from './config';
import { createLogger } from './common/log';
import { errorMessage } from './common/errors';
import { AGENT_VERSION, Vm } from './vm';
import { killChildren } from './common/children';

async function main(argv: string[]): Promise<void> {
  for (const a of argv) {
    if (a === '-h' || a === '--help') {
      process.stdout.write(helpText(AGENT_VERSION) + '\n');
      return;
    }
    if (a === '-v' || a === '--version') {
      process.stdout.write(AGENT_VERSION + '\n');
      return;
    }
    process.stderr.write(`uve-vm-agent: unknown option ${a} (try --help)\n`);
    process.exit(2);
  }

  let cfg;
  try {
    cfg = loadConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`uve-vm-agent: ${e.message}\n(see uve-vm-agent --help)\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(cfg.logLevel, { vm: cfg.vmId });
  // whichever way the process ends, no Xvfb, UA or ffmpeg it started outlives it
  process.on('exit', () => killChildren('SIGKILL'));
  // the gateway that read our stderr may be gone (kill -9): a write to the closed pipe is no crash
  process.stderr.on('error', () => undefined);
  process.stdout.on('error', () => undefined);

  // One session's bug must not take the VM down with every other session: log and carry on.
  process.on('uncaughtException', (e) => log.error('uncaught exception', { error: e.message, stack: e.stack }));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { error: errorMessage(e), stack: (e as Error)?.stack }));

  let startFailed = false;
  // a stop (signal, vm.shutdown, lost VMM) is bounded: past the bound the process goes anyway
  const onStopping = (reason: string): void => {
    setTimeout(() => {
      log.error('stop did not finish in time: exiting now', { reason, boundMs: cfg.stopTimeoutMs });
      process.exit(1);
    }, cfg.stopTimeoutMs).unref();
  };
  const vm = new Vm(cfg, log, { onStopping }, (error) => {
    if (error) log.error('stop failed', { error: errorMessage(error) });
    process.exit(error || startFailed ? 1 : 0);
  });
  process.on('exit', () => vm.removeTempData());
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn('second signal: exiting now', { signal: sig });
      process.exit(1);
    }
    void vm.stop(sig).catch(() => undefined);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await vm.start();
  } catch (e) {
    startFailed = true;
    log.error('VM could not start', { error: errorMessage(e) });
    process.stderr.write(`uve-vm-agent: could not start: ${errorMessage(e)}\n`);
    await vm.stop('start failed').catch(() => undefined);
    process.exit(1);
  }
}

void main(process.argv.slice(2));
