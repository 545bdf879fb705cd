// One-line JSON logs on stderr; operators grep and ship them.
type Level = 'error' | 'warn' | 'info' | 'debug';
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, data?: Record<string, unknown>): void;
  warn(msg: string, data?: Record<string, unknown>): void;
  info(msg: string, data?: Record<string, unknown>): void;
  debug(msg: string, data?: Record<string, unknown>): void;
}

export function createLogger(level: Level, name = 'gateway'): Logger {
  const emit = (l: Level) => (msg: string, data?: Record<string, unknown>) => {
    if (ORDER[l] > ORDER[level]) return;
    process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level: l, name, msg, ...data }) + '\n');
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}
