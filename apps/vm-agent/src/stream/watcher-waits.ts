// VIEWER hellos waiting for their monitoring.notify: the VMM sends it together with the token, and
// the bus is not faster than the UC (like a prepare, see PREPARE_WAIT_MS).
export class WatcherWaits {
  private readonly waits = new Map<string, Set<() => void>>();

  /** monitoring.notify arrived: wakes the hellos of this watcher on this session */
  announced(sessionId: string, userId: string): void {
    for (const fn of [...(this.waits.get(`${sessionId}\n${userId}`) ?? [])]) fn();
  }

  /** true once announced, false after `timeoutMs` */
  wait(sessionId: string, userId: string, timeoutMs: number): Promise<boolean> {
    const key = `${sessionId}\n${userId}`;
    return new Promise((resolve) => {
      let set = this.waits.get(key);
      if (!set) this.waits.set(key, (set = new Set()));
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        set!.delete(wake);
        if (set!.size === 0 && this.waits.get(key) === set) this.waits.delete(key);
        resolve(ok);
      };
      const wake = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      set.add(wake);
    });
  }
}
