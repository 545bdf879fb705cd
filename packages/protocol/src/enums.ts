// Enumerations of the public contract (docs/api/uve.graphql), as plain string unions so that
// the gateway, the agent and browser clients share them without a GraphQL dependency.

export const PLATFORMS = ['WASM', 'LINUX_X11'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const VIDEO_CODECS = ['H264', 'VP8', 'MJPEG'] as const;
export type VideoCodec = (typeof VIDEO_CODECS)[number];

export const LOCAL_RESOURCE_KINDS = [
  'GEOLOCATION',
  'ACCELEROMETER',
  'ORIENTATION',
  'CAMERA',
  'MICROPHONE',
  'CLIPBOARD',
  'BATTERY',
] as const;
export type LocalResourceKind = (typeof LOCAL_RESOURCE_KINDS)[number];

export const RECONNECTION_METHODS = ['NORMAL', 'NO_LOSS'] as const;
export type ReconnectionMethod = (typeof RECONNECTION_METHODS)[number];

/**
 * What NO_LOSS reconnection really gives on a platform: ANY_VM, the full state restored byte for
 * byte on whatever VM serves the reconnection; SAME_VM_WITHIN_WINDOW, the program kept frozen on
 * its VM during the reconnect window (no process checkpoint on these hosts: criu fails on this
 * kernel), and after the window or on another VM the application data only, as NORMAL.
 */
export const NO_LOSS_SCOPES = ['ANY_VM', 'SAME_VM_WITHIN_WINDOW'] as const;
export type NoLossScope = (typeof NO_LOSS_SCOPES)[number];
export const NO_LOSS_SCOPE: Record<Platform, NoLossScope> = { WASM: 'ANY_VM', LINUX_X11: 'SAME_VM_WITHIN_WINDOW' };

export const VM_PROVIDERS = ['DOCKER', 'PROCESS', 'SWARM'] as const;
export type VmProvider = (typeof VM_PROVIDERS)[number];

export const SNAPSHOT_KINDS = ['APP_DATA', 'FULL'] as const;
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];

export const DEPLOYMENT_STATUSES = ['PENDING', 'DOWNLOADING', 'INSTALLED', 'FAILED', 'REMOVING', 'REMOVED'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

/** Role a UVE-3 connection has in a session: the owner or an invited PLAYER sends input; a VIEWER (watcher, guest) only sees. */
export const STREAM_ROLES = ['PLAYER', 'VIEWER'] as const;
export type StreamRole = (typeof STREAM_ROLES)[number];

/** States of an application session (UVE-1), from request to end. */
export const SESSION_STATES = ['REQUESTED', 'ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED', 'ENDED', 'FAILED'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/**
 * The one definition of "occupies a slot on its VM", shared by the VMM (selection, pool) and the VM
 * (capacity): a DISCONNECTED session keeps its place until its reconnect window closes, so both
 * sides count it, and neither sends a session to a VM that would refuse it.
 */
export const SLOT_SESSION_STATES: readonly SessionState[] = ['ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED'];
export const occupiesSlot = (state: SessionState): boolean => SLOT_SESSION_STATES.includes(state);
