// UVE-5 reports checked at the VMM's edge, after the report guard said which VM sent one and before
// any handler reads it. A signature says who sent a report, not that its fields fit: a field that
// does not would be refused by PostgreSQL (a uuid or int column), stored as it is, or trip a handler.
// Each report type has a rule for each of its fields (the table below does not compile without
// one), and a report that breaks one is refused naming the type, the field and what is wrong.
// `vmId`, `at`, `nonce` and `sig` are the report guard's (@uve/queue report-auth).
import { DEPLOYMENT_STATUSES, LOCAL_RESOURCE_KINDS, PLATFORMS, SNAPSHOT_KINDS, STREAM_ROLES, VIDEO_CODECS, VM_PROVIDERS } from './enums';
import { ACK_OUTCOMES, LOAD_SOURCES, type VmEventMessage } from './vm-messages';

/** the largest PostgreSQL `int`, the column of a session report's `seq` and a VM's capacity */
export const INT4_MAX = 2 ** 31 - 1;
/** free text the VMM clips before it keeps it (reasons, errors, a VM's name): longer is no report */
export const REPORT_TEXT_MAX = 16_384;

/**
 * The first `max` UTF-16 units of `text`, never ending in half a surrogate pair (which PostgreSQL's
 * jsonb refuses, and this check too).
 */
export function clipText(text: string, max: number): string {
  const clipped = text.slice(0, max);
  const last = clipped.charCodeAt(clipped.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? clipped.slice(0, -1) : clipped;
}

/** A report's free text (`reason`, `error`) cut to REPORT_TEXT_MAX: what a VM sends, so that a long error is not a refused report. */
export function clipReportText<T extends object>(report: T): T {
  const r = report as Record<string, unknown>;
  const long = (k: string) => typeof r[k] === 'string' && (r[k] as string).length > REPORT_TEXT_MAX;
  if (!long('reason') && !long('error')) return report;
  const out = { ...r };
  for (const k of ['reason', 'error']) if (long(k)) out[k] = clipText(r[k] as string, REPORT_TEXT_MAX);
  return out as T;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);
/** NUL, or half a surrogate pair: PostgreSQL's text refuses the first, its jsonb (the inbox keeps reports so) both */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A report that breaks the protocol: it fails the same way however often it is handled. */
export class InvalidVmReport extends Error {
  constructor(readonly reportType: string, readonly field: string, problem: string) {
    super(`invalid ${reportType} report: "${field}" ${problem}`);
    this.name = 'InvalidVmReport';
  }
}

/** where inside the value (`.uaId`, `[2]`; '' for itself) and what is wrong */
interface Problem { at: string; what: string }
/** null when the value fits */
type Rule = (v: unknown) => Problem | null;

const shown = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  const json = JSON.stringify(v);
  return json.length > 40 ? `${Array.isArray(v) ? 'an array' : typeof v} of ${json.length} characters of JSON` : json;
};
const rule = (fits: (v: unknown) => boolean, what: string): Rule => (v) => (fits(v) ? null : { at: '', what: `${what} (got ${shown(v)})` });

const uuid = rule(isUuid, 'must be a UUID');
const int = (min: number, max: number) => rule((v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max, `must be an integer from ${min} to ${max}`);
const amount = rule((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'must be a finite number, 0 or more');
const bool = rule((v) => typeof v === 'boolean', 'must be true or false');
const oneOf = (values: readonly string[]) => rule((v) => values.includes(v as string), `must be one of ${values.join(', ')}`);
const sha256 = rule((v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v), 'must be 64 lowercase hex digits');
const text = (max: number, min = 0): Rule => {
  const sized = rule((v) => typeof v === 'string' && v.length >= min && v.length <= max, `must be a string of ${min} to ${max} characters`);
  const storable = rule((v) => !UNSTORABLE.test(v as string), 'must not hold a NUL character or half a surrogate pair');
  return (v) => sized(v) ?? storable(v);
};
const wsUrl: Rule = (v) => text(512, 1)(v) ?? rule((s) => /^wss?:\/\/\S+$/.test(s as string), 'must be a ws:// or wss:// URL')(v);
const optional = (r: Rule): Rule => (v) => (v === undefined ? null : r(v));
const nullable = (r: Rule): Rule => (v) => (v === undefined || v === null ? null : r(v));
/** a field the VMM does not read */
const unread: Rule = () => null;
const within = (at: string, p: Problem | null): Problem | null => p && { at: `${at}${p.at}`, what: p.what };
const object = (rules: Record<string, Rule>): Rule => (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { at: '', what: `must be an object (got ${shown(v)})` };
  for (const [key, r] of Object.entries(rules)) {
    const p = within(`.${key}`, r((v as Record<string, unknown>)[key]));
    if (p) return p;
  }
  return null;
};
/** an array of at most `max` items, each fitting `item`; with `distinct`, no two items with the same value of that key */
const listOf = (item: Rule, max: number, distinct?: string): Rule => (v) => {
  if (!Array.isArray(v) || v.length > max) return { at: '', what: `must be an array of at most ${max} items (got ${shown(v)})` };
  const seen = new Set<unknown>();
  for (const [i, x] of v.entries()) {
    const p = within(`[${i}]`, item(x));
    if (p) return p;
    if (distinct === undefined) continue;
    const key = (x as Record<string, unknown>)[distinct];
    if (seen.has(key)) return { at: `[${i}].${distinct}`, what: `must not repeat an earlier item's (got ${shown(key)} twice)` };
    seen.add(key);
  }
  return null;
};

/** one rule per field of a report type, every field but the report guard's */
type FieldRules<E> = { [K in Exclude<keyof E, 'type' | 'vmId' | 'at' | 'nonce' | 'sig'>]-?: Rule };
type ReportRules = { [T in VmEventMessage['type']]: FieldRules<Extract<VmEventMessage, { type: T }>> };

const session = { sessionId: uuid, userId: uuid, uaId: uuid, seq: int(1, INT4_MAX) };
const codecs = listOf(oneOf(VIDEO_CODECS), 16);
const freeText = text(REPORT_TEXT_MAX);

const RULES: ReportRules = {
  'vm.register': {
    name: freeText,
    platform: oneOf(PLATFORMS),
    provider: oneOf(VM_PROVIDERS),
    endpoint: wsUrl,
    codecs,
    capacity: int(0, INT4_MAX),
    agentVersion: unread,
    // a VM holds one version of a UA; an id that is not a UUID is no UA of this VMM (left aside)
    deployed: listOf(object({ uaId: text(64, 1), version: text(64) }), 4096, 'uaId'),
  },
  'vm.heartbeat': {
    activeSessions: unread,
    capacity: int(0, INT4_MAX),
    codecs,
    cpuLoad: amount,
    rssBytes: amount,
    loadSource: optional(oneOf(LOAD_SOURCES)),
    deployed: unread,
  },
  'vm.stopping': { reason: freeText },
  'command.ack': { commandId: uuid, outcome: oneOf(ACK_OUTCOMES), error: nullable(freeText) },
  'deployment.changed': { uaId: uuid, version: text(64), status: oneOf(DEPLOYMENT_STATUSES), error: nullable(freeText) },
  'session.connected': { ...session, role: oneOf(STREAM_ROLES) },
  'session.disconnected': { ...session, reason: freeText, unexpected: bool },
  'session.resourceRequested': { ...session, kind: oneOf(LOCAL_RESOURCE_KINDS) },
  'session.failed': { ...session, error: freeText },
  'session.ended': { ...session, reason: freeText },
  'session.suspended': { ...session, suspended: bool },
  'vmdata.updated': { ...session, snapshotId: uuid, kind: oneOf(SNAPSHOT_KINDS), sizeBytes: int(0, Number.MAX_SAFE_INTEGER), sha256 },
  'vmdata.restored': { ...session, snapshotId: uuid, restored: bool, kind: nullable(oneOf(SNAPSHOT_KINDS)), reason: nullable(freeText) },
};

/**
 * Throws InvalidVmReport when a field of the report does not fit. A type this version does not know
 * passes (the VMM ignores it with a warning: a newer VM).
 */
export function checkVmReport(m: VmEventMessage): void {
  if (!Object.hasOwn(RULES, m.type)) return;
  const p = object(RULES[m.type] as Record<string, Rule>)(m);
  if (p) throw new InvalidVmReport(m.type, p.at.slice(1), p.what);
}
