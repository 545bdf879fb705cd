// The agent's /metrics (Prometheus text format) on its UVE-3 HTTP server: what an operator needs
// to see a VM's load and its streams' health. The series are listed in docs/vm-agent.md.
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Session } from './sessions/session';

export interface MetricsSource {
  sessions(): Session[];
  capacity: number;
  /** UVE-5 reports Redis has not taken yet */
  pendingReports(): number;
  /** WASM VMs: their guest threads (UaRuntime.guestThreads) */
  guestThreads?(): { started: number; reused: number; idle: number };
  /** restores prepared ahead (RestoresAhead.stats) */
  restoresAhead?(): { preparing: number; ready: number; taken: number; dropped: number; failed: number };
}

/** where a session's stream measurements go (Session calls these) */
export interface StreamObserver {
  encoded(ms: number): void;
  inputToFrame(ms: number): void;
}

export class AgentMetrics implements StreamObserver {
  readonly registry = new Registry();
  private readonly encodeSeconds: Histogram;
  private readonly inputSeconds: Histogram;

  constructor(src: MetricsSource) {
    const registers = [this.registry];
    new Gauge({
      name: 'uve_vm_sessions',
      help: 'sessions this VM holds (each occupies a slot: running, suspended, or waiting for its PLAYER to reconnect)',
      registers,
      collect() {
        this.set(src.sessions().length);
      },
    });
    new Gauge({
      name: 'uve_vm_sessions_awaiting_reconnect',
      help: 'sessions whose PLAYER left and whose reconnect window is open',
      registers,
      collect() {
        this.set(src.sessions().filter((s) => s.awaitingReconnect).length);
      },
    });
    new Gauge({
      name: 'uve_vm_capacity',
      help: 'sessions this VM runs at once (UVE_VM_CAPACITY)',
      registers,
      collect() {
        this.set(src.capacity);
      },
    });
    new Gauge({
      name: 'uve_vm_connections',
      help: 'UC connections attached to sessions, by role',
      labelNames: ['role'],
      registers,
      collect() {
        let players = 0;
        let viewers = 0;
        for (const s of src.sessions()) {
          const p = s.hasPlayer ? 1 : 0;
          players += p;
          viewers += s.connections - p;
        }
        this.set({ role: 'PLAYER' }, players);
        this.set({ role: 'VIEWER' }, viewers);
      },
    });
    new Gauge({
      name: 'uve_vm_session_stream_fps',
      help: 'frames per second each session sent over the last 5 s',
      labelNames: ['session'],
      registers,
      collect() {
        this.reset();
        for (const s of src.sessions()) this.set({ session: s.id }, s.streamFps());
      },
    });
    new Gauge({
      name: 'uve_vm_reports_pending',
      help: 'UVE-5 reports not yet handed to Redis (grows while Redis is unreachable)',
      registers,
      collect() {
        this.set(src.pendingReports());
      },
    });
    // a gauge per `kind`, read from an object of counts at each scrape
    const byKind = (name: string, help: string, read: () => Record<string, number>) =>
      new Gauge({
        name, help, labelNames: ['kind'], registers,
        collect() {
          for (const [kind, n] of Object.entries(read())) this.set({ kind }, n);
        },
      });
    const { guestThreads, restoresAhead } = src;
    if (guestThreads) {
      byKind('uve_vm_wasm_guest_threads', 'WASM guest threads: started, and UAs that ran on a thread an earlier UA had run on (counts since the start); idle now', () => guestThreads());
    }
    if (restoresAhead) {
      byKind('uve_vm_restores_ahead', 'restores prepared while the user is away: preparing and ready now; taken by a reconnection, dropped unused, failed (counts since the start)', () => restoresAhead());
    }
    this.encodeSeconds = new Histogram({
      name: 'uve_vm_frame_encode_seconds',
      help: 'time to encode one frame',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
      registers,
    });
    this.inputSeconds = new Histogram({
      name: 'uve_vm_input_to_frame_seconds',
      help: "time from a PLAYER's input arriving to the first frame that includes it leaving for the UC",
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers,
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'uve_vm_' });
  }

  encoded(ms: number): void {
    this.encodeSeconds.observe(ms / 1000);
  }

  inputToFrame(ms: number): void {
    this.inputSeconds.observe(ms / 1000);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
