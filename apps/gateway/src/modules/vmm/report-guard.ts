// Who may report on UVE-5: only a VM this VMM provisioned (or an admin enrolled), not removed or
// destroyed, signing each report with its own key (sha256 of its secret = vms.secret_hash; see
// @uve/queue report-auth). A VM report must be fresh (UVE_VM_REPORT_MAX_AGE_S) and its nonce new;
// a session report's replay is already a no-op in the inbox (unique seq), so it may wait in the
// queue through an outage of any length. A nonce is claimed by the queue message that brought it:
// the same message handed over again (a retry, or a redelivery after its gateway was killed) is
// admitted again; another message with it is a replay, whoever put it on the queue (an attacker, or
// the VM's own second send of a report Redis had taken: the first copy is the one handled). Every
// refusal is logged and counted in /metrics.
import type { Redis } from 'ioredis';
import { reportSignedWith } from '@uve/queue';
import type { VmEventMessage } from '@uve/protocol';
import type { Logger } from '../../common/logger';
import type { VmsService } from '../vms/vms.service';

export const REFUSAL_REASONS = ['unknown_vm', 'bad_signature', 'stale', 'replay', 'not_its_session'] as const;
export type ReportRefusal = (typeof REFUSAL_REASONS)[number];

/**
 * Claims a nonce for a queue message (KEYS[1] the nonce, ARGV[1] the message's id, ARGV[2] how
 * long in ms): 1 when it is this message's (new, or claimed by it before), 0 when another's.
 */
const CLAIM_NONCE = `
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0`;

export class VmReportGuard {
  constructor(
    private readonly vms: VmsService,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly maxAgeMs: number,
    private readonly log: Logger,
    private readonly refused: (reason: ReportRefusal) => void,
  ) {}

  /**
   * Whether the report, brought by queue message `messageId`, may be handled (false: refused,
   * logged and counted). Throws when Redis does not answer.
   */
  async admit(m: VmEventMessage, messageId: string): Promise<boolean> {
    const vm = typeof m.vmId === 'string' ? await this.vms.findById(m.vmId) : null;
    if (!vm?.secretHash || vm.destroyedAt) return this.refuse('unknown_vm', m, 'no VM with this id was provisioned, or it was removed');
    if (!reportSignedWith(m, Buffer.from(vm.secretHash, 'hex'))) return this.refuse('bad_signature', m, 'the signature does not match the report and the VM');
    const at = Date.parse(m.at);
    const isSessionReport = 'sessionId' in m;
    if (Number.isNaN(at) || (!isSessionReport && Math.abs(Date.now() - at) > this.maxAgeMs)) return this.refuse('stale', m, `sent at ${String(m.at).slice(0, 40)}, outside the ${this.maxAgeMs / 1000} s window`);
    // the nonce is remembered past the window, after which the time alone refuses a replay
    const key = `${this.prefix}:vm-report-nonce:${vm.id}:${m.nonce}`;
    const ours = await this.redis.eval(CLAIM_NONCE, 1, key, messageId, this.maxAgeMs * 2);
    if (ours !== 1) return this.refuse('replay', m, 'this report was already received');
    return true;
  }

  /** A signed report about a session its VM does not hold (the inbox settles it `ignored`). */
  notItsSession(m: { type: string; vmId: string; sessionId: string }): void {
    this.refuse('not_its_session', m, 'the session is not on this VM');
  }

  private refuse(reason: ReportRefusal, m: { type?: string; vmId?: unknown; sessionId?: unknown }, why: string): false {
    this.refused(reason);
    this.log.warn('UVE-5 report refused', { reason, why, type: String(m.type).slice(0, 40), vmId: String(m.vmId).slice(0, 64), ...('sessionId' in m ? { sessionId: String(m.sessionId).slice(0, 64) } : {}) });
    return false;
  }
}
