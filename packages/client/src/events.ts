// A typed event emitter that runs in browsers and Node alike (no dependency on node:events).
export type Listener<T> = (payload: T) => void;

export class Emitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => this.off(event, fn);
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    const off = this.on(event, (p) => {
      off();
      fn(p);
    });
    return off;
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(fn as Listener<never>);
  }

  /** resolves with the next emission of `event` */
  next<K extends keyof E>(event: K): Promise<E[K]> {
    return new Promise((resolve) => this.once(event, resolve));
  }

  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        (fn as Listener<E[K]>)(payload);
      } catch (e) {
        // a listener's bug must not break the stream; surface it asynchronously
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
