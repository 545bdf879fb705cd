// The contract's enums, registered once for GraphQL; the value lists come from @uve/protocol so
// the database, the schema and the wire agree.
import { registerEnumType } from 'type-graphql';
import {
  DEPLOYMENT_STATUSES,
  LOCAL_RESOURCE_KINDS,
  NO_LOSS_SCOPES,
  PLATFORMS,
  RECONNECTION_METHODS,
  SESSION_STATES,
  SNAPSHOT_KINDS,
  VIDEO_CODECS,
  VM_PROVIDERS,
} from '@uve/protocol';

const asEnum = <T extends string>(values: readonly T[]): { [K in T]: K } =>
  Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

export const ROLES = ['USER', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];
export const ACCESS_NETWORK_TYPES = ['ETHERNET', 'WIFI', 'CELLULAR_5G', 'CELLULAR_4G', 'CELLULAR_3G', 'UNKNOWN'] as const;
export type AccessNetworkType = (typeof ACCESS_NETWORK_TYPES)[number];
export { SESSION_STATES, type SessionState } from '@uve/protocol';
export const WATCHER_PRIVILEGES = ['VIEW', 'SUSPEND'] as const;
export type WatcherPrivilege = (typeof WATCHER_PRIVILEGES)[number];
export const PARTICIPANT_ROLES = ['VIEWER', 'PLAYER'] as const;
export type ParticipantRole = (typeof PARTICIPANT_ROLES)[number];
export const INVITATION_STATUSES = ['PENDING', 'ACCEPTED', 'REJECTED', 'REVOKED', 'EXPIRED'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];
export const VM_STATUSES = ['PROVISIONING', 'IDLE', 'BUSY', 'DRAINING', 'OFFLINE', 'FAILED'] as const;
export type VmStatus = (typeof VM_STATUSES)[number];
export const PROCUREMENT_STATUSES = ['REQUESTED', 'VM_SELECTED', 'DOWNLOADING', 'DEPLOYED', 'FAILED'] as const;
export type ProcurementStatus = (typeof PROCUREMENT_STATUSES)[number];
/** A UA version in the catalog: PENDING until some VM installed it, FAILED when its procurement failed. */
export const UA_VERSION_STATUSES = ['PENDING', 'AVAILABLE', 'FAILED'] as const;
export type UaVersionStatus = (typeof UA_VERSION_STATUSES)[number];
export const SESSION_EVENT_TYPES = [
  'REQUESTED', 'ASSIGNED', 'CONNECTED', 'SUSPENDED', 'RESUMED', 'DISCONNECTED', 'RECONNECTED',
  'SNAPSHOT_SAVED', 'SNAPSHOT_RESTORED', 'MONITORING_STARTED', 'MONITORING_ENDED',
  'SUSPEND_CONTROL_CHANGED', 'PARTICIPANT_JOINED', 'PARTICIPANT_LEFT',
  'INVITATION_SENT', 'INVITATION_ACCEPTED', 'INVITATION_REJECTED',
  'RESOURCE_REQUESTED', 'ENDED', 'FAILED',
  // the VM could not use the VM Data it was given (checksum mismatch, unusable state): fresh start
  'SNAPSHOT_RESTORE_FAILED',
] as const;
export type SessionEventType = (typeof SESSION_EVENT_TYPES)[number];
export const VM_EVENT_TYPES = ['PROVISIONED', 'STATUS_CHANGED', 'HEARTBEAT_LOST', 'DEPLOYMENT_CHANGED', 'REMOVED'] as const;
export type VmEventType = (typeof VM_EVENT_TYPES)[number];

export const RoleEnum = asEnum(ROLES);
export const PlatformEnum = asEnum(PLATFORMS);
export const VideoCodecEnum = asEnum(VIDEO_CODECS);
export const LocalResourceKindEnum = asEnum(LOCAL_RESOURCE_KINDS);
export const AccessNetworkTypeEnum = asEnum(ACCESS_NETWORK_TYPES);
export const ReconnectionMethodEnum = asEnum(RECONNECTION_METHODS);
export const SessionStateEnum = asEnum(SESSION_STATES);
export const WatcherPrivilegeEnum = asEnum(WATCHER_PRIVILEGES);
export const ParticipantRoleEnum = asEnum(PARTICIPANT_ROLES);
export const InvitationStatusEnum = asEnum(INVITATION_STATUSES);
export const SnapshotKindEnum = asEnum(SNAPSHOT_KINDS);
export const VmStatusEnum = asEnum(VM_STATUSES);
export const NoLossScopeEnum = asEnum(NO_LOSS_SCOPES);
export const VmProviderEnum = asEnum(VM_PROVIDERS);
export const DeploymentStatusEnum = asEnum(DEPLOYMENT_STATUSES);
export const ProcurementStatusEnum = asEnum(PROCUREMENT_STATUSES);
export const UaVersionStatusEnum = asEnum(UA_VERSION_STATUSES);
export const SessionEventTypeEnum = asEnum(SESSION_EVENT_TYPES);
export const VmEventTypeEnum = asEnum(VM_EVENT_TYPES);

registerEnumType(RoleEnum, { name: 'Role' });
registerEnumType(PlatformEnum, {
  name: 'Platform',
  valuesConfig: {
    WASM: { description: 'WebAssembly UAs run by the VM agent itself (portable, snapshot-able byte for byte)' },
    LINUX_X11: { description: 'Linux GUI UAs in a virtual X display inside the VM' },
  },
});
registerEnumType(VideoCodecEnum, { name: 'VideoCodec' });
registerEnumType(LocalResourceKindEnum, { name: 'LocalResourceKind' });
registerEnumType(AccessNetworkTypeEnum, { name: 'AccessNetworkType' });
registerEnumType(ReconnectionMethodEnum, {
  name: 'ReconnectionMethod',
  description: 'How UVE entities behave after an unexpected disconnect (seed 7.2).',
  valuesConfig: {
    NORMAL: { description: 'application data is saved; on reconnect the UA is reloaded per its own logic' },
    NO_LOSS: { description: 'the whole VM state is saved; on reconnect the user continues exactly where they were' },
  },
});
registerEnumType(SessionStateEnum, { name: 'SessionState' });
registerEnumType(WatcherPrivilegeEnum, {
  name: 'WatcherPrivilege',
  valuesConfig: {
    VIEW: { description: 'see the Output Stream' },
    SUSPEND: { description: "suspend and resume the watchee's sessions (one suspend controller per session at a time)" },
  },
});
registerEnumType(ParticipantRoleEnum, { name: 'ParticipantRole' });
registerEnumType(InvitationStatusEnum, { name: 'InvitationStatus' });
registerEnumType(SnapshotKindEnum, {
  name: 'SnapshotKind',
  valuesConfig: {
    APP_DATA: { description: 'application data only (NORMAL reconnection)' },
    FULL: { description: 'the full VM state at one point in time (NO_LOSS reconnection)' },
  },
});
registerEnumType(VmStatusEnum, { name: 'VmStatus' });
registerEnumType(NoLossScopeEnum, { name: 'NoLossScope', description: 'What NO_LOSS reconnection really gives for a UA, by its platform.', valuesConfig: {
  ANY_VM: { description: 'the full state (memory, globals, clock) is saved at a drop and restored byte for byte on any VM' },
  SAME_VM_WITHIN_WINDOW: { description: 'no process checkpoint on this host (criu fails on this kernel): within the reconnect window the UA waits frozen on its VM and the user goes back to it; after the window, or on another VM, the application data is restored, as NORMAL' },
} });
registerEnumType(VmProviderEnum, { name: 'VmProvider' });
registerEnumType(DeploymentStatusEnum, { name: 'DeploymentStatus' });
registerEnumType(ProcurementStatusEnum, { name: 'ProcurementStatus' });
registerEnumType(UaVersionStatusEnum, { name: 'UaVersionStatus' });
registerEnumType(SessionEventTypeEnum, { name: 'SessionEventType' });
registerEnumType(VmEventTypeEnum, { name: 'VmEventType' });
