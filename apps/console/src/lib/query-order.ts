/**
 * Which of a query's answers a page may show. A live event is published after its change is
 * committed, so an answer fetched before the event arrived may predate it: shown after the event,
 * it would put the old state back for good (a deployment seen REMOVED going back to REMOVING). Such
 * a fetch is dropped and redone; a fetch begun after the event sees the event's change.
 */
export class QueryOrder {
  private latest = 0;
  private inFlight = false;

  /** A fetch begins; returns its number. */
  begin(): number {
    this.inFlight = true;
    return ++this.latest;
  }

  /** A live update was applied; true when the fetch in flight must be redone. */
  updated(): boolean {
    if (!this.inFlight) return false;
    this.latest++;
    this.inFlight = false;
    return true;
  }

  /** Fetch `n` answered; true when its answer is the one to show. */
  settle(n: number): boolean {
    if (n !== this.latest) return false;
    this.inFlight = false;
    return true;
  }
}

/**
 * `run` as a refetch that never overlaps itself: a call while it runs makes one more run after it,
 * however many calls came meanwhile (a burst of live events, an action's own refetch beside the
 * event it caused: one request, not one each). Each call resolves once a run that began after the
 * call has ended, so a caller that awaits it sees what was true when it asked.
 */
export function coalesced(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let again = false;
  return () => {
    again = true;
    running ??= (async () => {
      try {
        while (again) {
          again = false;
          await run();
        }
      } finally {
        running = null;
      }
    })();
    return running;
  };
}
