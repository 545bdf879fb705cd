// UVE-3 (Output Stream + interaction) and UVE-4 (local resources) wire protocol between a VM and a UC.
// One WebSocket per UC connection. Text messages are JSON control messages; binary messages are
// video frames with a fixed little-endian header. See docs/protocol.md (keep the two in step).
import { LOCAL_RESOURCE_KINDS, type LocalResourceKind, type SnapshotKind, type StreamRole, type VideoCodec } from './enums';

export const STREAM_PROTOCOL_VERSION = 1;
/** Path of the UVE-3 endpoint on a VM. */
export const STREAM_PATH = '/uve3';
/** Largest message a UC may send; larger ones close the socket with CLOSE.TOO_BIG. */
export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;
/** The UC must send `hello` within this time. */
export const HELLO_TIMEOUT_MS = 5_000;

/** WebSocket close codes used by the VM (4000-4999 are application codes). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  BAD_MESSAGE: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  HELLO_TIMEOUT: 4408,
  REPLACED: 4409,
  ENDED: 4410,
  /** a limit of the VM: connections per VM or session, messages per second */
  RATE_LIMITED: 4429,
  UNSUPPORTED_VERSION: 4426,
} as const;

// ---- binary video frames (VM -> UC) -----------------------------------------------------------

export const FRAME_MAGIC = 0x55; // 'U'
export const FRAME_HEADER_BYTES = 28;
export const FRAME_FLAG_KEY = 1;

/**
 * Header of one video frame message, followed by the payload: a JPEG image (MJPEG) or one H264
 * access unit in AVCC form (4-byte NAL lengths; the avcC record comes in the `codec` message).
 */
export interface FrameHeader {
  seq: number;
  /** VM clock (ms since epoch, fractional) when the picture was captured */
  captureTs: number;
  /** sequence of the last input event applied before the capture (0 when none) */
  inputSeq: number;
  keyframe: boolean;
  width: number;
  height: number;
}

// layout: u8 magic, u8 version, u8 flags, u8 reserved, u32 seq, f64 captureTs, u32 inputSeq,
//         u16 width, u16 height, u32 payloadBytes
export function encodeFrame(h: FrameHeader, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, FRAME_MAGIC);
  dv.setUint8(1, STREAM_PROTOCOL_VERSION);
  dv.setUint8(2, h.keyframe ? FRAME_FLAG_KEY : 0);
  dv.setUint32(4, h.seq >>> 0, true);
  dv.setFloat64(8, h.captureTs, true);
  dv.setUint32(16, h.inputSeq >>> 0, true);
  dv.setUint16(20, h.width, true);
  dv.setUint16(22, h.height, true);
  dv.setUint32(24, payload.byteLength, true);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function decodeFrame(buf: ArrayBuffer | Uint8Array): { header: FrameHeader; payload: Uint8Array } {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (bytes.byteLength < FRAME_HEADER_BYTES) throw new Error('frame shorter than its header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint8(0) !== FRAME_MAGIC) throw new Error('not a UVE frame');
  const len = dv.getUint32(24, true);
  if (len !== bytes.byteLength - FRAME_HEADER_BYTES) throw new Error('frame payload length mismatch');
  return {
    header: {
      keyframe: (dv.getUint8(2) & FRAME_FLAG_KEY) !== 0,
      seq: dv.getUint32(4, true),
      captureTs: dv.getFloat64(8, true),
      inputSeq: dv.getUint32(16, true),
      width: dv.getUint16(20, true),
      height: dv.getUint16(22, true),
    },
    payload: bytes.subarray(FRAME_HEADER_BYTES),
  };
}

// ---- input (interaction commands) -------------------------------------------------------------

export type PointerInput = { kind: 'pointer'; type: 'down' | 'up' | 'move'; x: number; y: number; button: number };
export type TouchInput = { kind: 'touch'; type: 'start' | 'move' | 'end'; id: number; x: number; y: number };
export type KeyInput = { kind: 'key'; type: 'down' | 'up'; code: string; key: string };
export type TextInput = { kind: 'text'; text: string };
export type WheelInput = { kind: 'wheel'; dx: number; dy: number; x: number; y: number };
export type InputEvent = PointerInput | TouchInput | KeyInput | TextInput | WheelInput;

// ---- control messages -------------------------------------------------------------------------

/** UVE-4 answer value per resource kind. */
export type ResourceValue =
  | { kind: 'GEOLOCATION'; latitude: number; longitude: number; accuracy: number }
  | { kind: 'ACCELEROMETER'; x: number; y: number; z: number }
  | { kind: 'ORIENTATION'; alpha: number; beta: number; gamma: number }
  | { kind: 'BATTERY'; level: number; charging: boolean }
  | { kind: 'CLIPBOARD'; text: string };

export type ClientMessage =
  /** `timings`: the UC wants a `timing` message after each frame (benchmarks, diagnostics) */
  | { t: 'hello'; v: number; token: string; timings?: boolean }
  | { t: 'input'; seq: number; ev: InputEvent }
  | { t: 'ping'; id: number; t0: number }
  | { t: 'resource'; id: number; ok: true; value: ResourceValue }
  | { t: 'resource'; id: number; ok: false; reason: string }
  | { t: 'keyframe' }
  | { t: 'bye' };

/**
 * What became of the VM Data the session was told to restore (seed B.1), in the welcome of a
 * session that had some: restored before the first frame, or not (the UA started fresh, `reason`).
 */
export type WelcomeVmData =
  /** `preparedAhead`: the restore was prepared on this VM while the PLAYER was away (vmdata.prepareRestore) */
  | { snapshotId: string; restored: true; kind: SnapshotKind; preparedAhead?: boolean }
  | { snapshotId: string; restored: false; reason: string };

/**
 * What a decoder needs to start on a stream: the VM's encoder gives it, the `codec` message carries
 * it (with `description` base64), the UC's decoder takes it (WebCodecs' VideoDecoderConfig shape).
 */
export interface DecoderConfig {
  codec: VideoCodec;
  /** WebCodecs codec string, e.g. 'avc1.42C01F', or 'image/jpeg' for MJPEG */
  mime: string;
  width: number;
  height: number;
  /** avcC record for H264 (AVCDecoderConfigurationRecord), none for MJPEG */
  description?: Uint8Array;
}

export type ServerMessage =
  | { t: 'welcome'; v: number; sessionId: string; role: StreamRole; codec: VideoCodec; width: number; height: number; maxFps: number; suspended: boolean; vmData?: WelcomeVmData; watched?: boolean; start?: SessionStartTiming }
  /** decoder configuration; sent before the first frame and whenever it changes */
  | ({ t: 'codec'; description?: string } & Omit<DecoderConfig, 'description'>)
  | { t: 'pong'; id: number; t0: number; t1: number }
  | { t: 'resourceRequest'; id: number; kind: LocalResourceKind }
  | { t: 'suspended'; reason: string | null }
  | { t: 'resumed' }
  /** to the session's user: watchers were announced (or the last one left) */
  | { t: 'watched'; watched: boolean }
  /** something the UC sent was not acted on, and why (input while suspended) */
  | { t: 'notice'; code: 'SUSPENDED'; message: string }
  | { t: 'ended'; reason: string }
  /** after a frame, to a UC whose hello asked for timings: where the frame's time went on the VM */
  | ({ t: 'timing' } & FrameTiming);

/**
 * Where a session's start went, in the welcome to a UC whose hello asked for timings (wall clock, ms
 * since epoch; the VMM and the VM share one clock on one host, else they differ by the clock offset).
 * The VMM's stamps travel in its session.prepare (`trace`); the VM's are its own.
 */
export interface SessionStartTiming {
  /** VMM: the transaction that assigned the session committed; its session.prepare went to the queue */
  committedAt?: number;
  sentAt?: number;
  /** VM: the session.prepare arrived; the UA started; the encoder was ready; the first picture was captured and encoded */
  preparedAt: number;
  uaStartedAt?: number;
  encoderReadyAt?: number;
  /**
   * VM, a start with VM Data to restore: its download (UVE-5 retrieve) began, its first bytes
   * came, it was complete and its sha256 checked; the UA's own start (before the restore) was
   * done (a NO_LOSS WASM session: only its guest thread started, the restore makes the instance);
   * the state was in the UA (uaStartedAt follows)
   */
  vmDataRequestedAt?: number;
  vmDataFirstByteAt?: number;
  vmDataFetchedAt?: number;
  uaInstantiatedAt?: number;
  vmDataRestoredAt?: number;
  /**
   * VM, a restore prepared ahead (vmdata.prepareRestore): it began, its download's first bytes came,
   * its UA was started (frozen, for the restore), the download was complete, the UA held the state
   * (before preparedAt when it was ready in time)
   */
  restoreAheadStartedAt?: number;
  restoreAheadFirstByteAt?: number;
  restoreAheadUaStartedAt?: number;
  restoreAheadFetchedAt?: number;
  restoreAheadReadyAt?: number;
  capturedAt?: number;
  encodedAt?: number;
  /** VM: this UC's hello arrived; its welcome left */
  helloAt?: number;
  welcomeAt: number;
}

/**
 * The VM's stages of one frame, VM wall clock (ms since epoch, fractional). The input fields are
 * those of the newest input applied before the capture (null when the frame follows no input).
 */
export interface FrameTiming {
  seq: number;
  inputSeq: number;
  inputReceivedAt: number | null;
  inputAppliedAt: number | null;
  capturedAt: number;
  encodedAt: number;
  /** when the frame's bytes left the VM process (the socket write completed) */
  sentAt: number;
}

// ---- validation of what a UC sends ------------------------------------------------------------

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const fin = (v: unknown, what: string, min = -1e9, max = 1e9): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new ProtocolError(`${what} must be a number in [${min}, ${max}]`);
  return v;
};
const int = (v: unknown, what: string, min: number, max: number): number => {
  fin(v, what, min, max);
  if (!Number.isInteger(v)) throw new ProtocolError(`${what} must be an integer`);
  return v as number;
};
const str = (v: unknown, what: string, maxLen: number): string => {
  if (typeof v !== 'string' || v.length > maxLen) throw new ProtocolError(`${what} must be a string of at most ${maxLen} characters`);
  return v;
};
const oneOf = <T extends string>(v: unknown, what: string, allowed: readonly T[]): T => {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new ProtocolError(`${what} must be one of ${allowed.join(', ')}`);
  return v as T;
};

function parseInput(ev: unknown): InputEvent {
  if (!isObj(ev)) throw new ProtocolError('input.ev must be an object');
  switch (ev.kind) {
    case 'pointer':
      return { kind: 'pointer', type: oneOf(ev.type, 'pointer.type', ['down', 'up', 'move'] as const), x: fin(ev.x, 'x', -1e5, 1e5), y: fin(ev.y, 'y', -1e5, 1e5), button: int(ev.button ?? 0, 'button', 0, 15) };
    case 'touch':
      return { kind: 'touch', type: oneOf(ev.type, 'touch.type', ['start', 'move', 'end'] as const), id: int(ev.id, 'touch.id', 0, 1 << 20), x: fin(ev.x, 'x', -1e5, 1e5), y: fin(ev.y, 'y', -1e5, 1e5) };
    case 'key':
      return { kind: 'key', type: oneOf(ev.type, 'key.type', ['down', 'up'] as const), code: str(ev.code, 'key.code', 32), key: str(ev.key, 'key.key', 32) };
    case 'text':
      return { kind: 'text', text: str(ev.text, 'text', 1024) };
    case 'wheel':
      return { kind: 'wheel', dx: fin(ev.dx, 'dx'), dy: fin(ev.dy, 'dy'), x: fin(ev.x, 'x', -1e5, 1e5), y: fin(ev.y, 'y', -1e5, 1e5) };
    default:
      throw new ProtocolError('input.ev.kind must be one of pointer, touch, key, text, wheel');
  }
}

function parseResourceValue(v: unknown): ResourceValue {
  if (!isObj(v)) throw new ProtocolError('resource.value must be an object');
  switch (v.kind) {
    case 'GEOLOCATION':
      return { kind: 'GEOLOCATION', latitude: fin(v.latitude, 'latitude', -90, 90), longitude: fin(v.longitude, 'longitude', -180, 180), accuracy: fin(v.accuracy ?? 0, 'accuracy', 0, 1e7) };
    case 'ACCELEROMETER':
      return { kind: 'ACCELEROMETER', x: fin(v.x, 'x', -1e3, 1e3), y: fin(v.y, 'y', -1e3, 1e3), z: fin(v.z, 'z', -1e3, 1e3) };
    case 'ORIENTATION':
      return { kind: 'ORIENTATION', alpha: fin(v.alpha, 'alpha', -360, 360), beta: fin(v.beta, 'beta', -360, 360), gamma: fin(v.gamma, 'gamma', -360, 360) };
    case 'BATTERY':
      return { kind: 'BATTERY', level: fin(v.level, 'level', 0, 1), charging: v.charging === true };
    case 'CLIPBOARD':
      return { kind: 'CLIPBOARD', text: str(v.text, 'clipboard text', 8192) };
    default:
      throw new ProtocolError(`resource.value.kind must be one of ${LOCAL_RESOURCE_KINDS.join(', ')} with a value this protocol version carries`);
  }
}

/** Parses and validates one text message from a UC; throws ProtocolError with a reason fit for a close frame. */
export function parseClientMessage(text: string): ClientMessage {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw new ProtocolError('message is not JSON');
  }
  if (!isObj(m)) throw new ProtocolError('message must be a JSON object');
  switch (m.t) {
    case 'hello':
      return { t: 'hello', v: int(m.v, 'v', 0, 1000), token: str(m.token, 'token', 4096), ...(m.timings === true ? { timings: true } : {}) };
    case 'input':
      return { t: 'input', seq: int(m.seq, 'seq', 0, 0xffffffff), ev: parseInput(m.ev) };
    case 'ping':
      return { t: 'ping', id: int(m.id, 'id', 0, 0xffffffff), t0: fin(m.t0, 't0', 0, 1e14) };
    case 'resource': {
      const id = int(m.id, 'id', 0, 0xffffffff);
      if (m.ok === true) return { t: 'resource', id, ok: true, value: parseResourceValue(m.value) };
      if (m.ok === false) return { t: 'resource', id, ok: false, reason: str(m.reason ?? 'refused', 'reason', 200) };
      throw new ProtocolError('resource.ok must be true or false');
    }
    case 'keyframe':
      return { t: 'keyframe' };
    case 'bye':
      return { t: 'bye' };
    default:
      throw new ProtocolError('unknown message type t');
  }
}

/** Close reasons must fit in a close frame (123 bytes). */
export function closeReason(s: string): string {
  const enc = new TextEncoder();
  let out = s;
  while (enc.encode(out).byteLength > 123) out = out.slice(0, -1);
  return out;
}
