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
