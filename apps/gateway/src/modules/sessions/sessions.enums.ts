// A session's states (their transitions are session-state.ts) and the events its history records.
import { registerEnumType } from 'type-graphql';
import { SESSION_STATES } from '@uve/protocol';
import { asEnum } from '../../common/enums';

export { SESSION_STATES, type SessionState } from '@uve/protocol';
export const SESSION_EVENT_TYPES = [
  'REQUESTED', 'ASSIGNED', 'CONNECTED', 'SUSPENDED', 'RESUMED', 'DISCONNECTED', 'RECONNECTED',
  'SNAPSHOT_SAVED', 'SNAPSHOT_RESTORED', 'MONITORING_STARTED', 'MONITORING_ENDED',
  'SUSPEND_CONTROL_CHANGED', 'PARTICIPANT_JOINED', 'PARTICIPANT_LEFT',
  'INVITATION_SENT', 'INVITATION_ACCEPTED', 'INVITATION_REJECTED',
  'RESOURCE_REQUESTED', 'ENDED', 'FAILED',
  // the VM could not use the VM Data it was given (checksum mismatch, unusable state): fresh start
  'SNAPSHOT_RESTORE_FAILED',
  // while DISCONNECTED: a VM was told to restore the VM Data ahead (data.vmId, data.snapshotId)
  'RESTORE_AHEAD',
] as const;
export type SessionEventType = (typeof SESSION_EVENT_TYPES)[number];

export const SessionStateEnum = asEnum(SESSION_STATES);
export const SessionEventTypeEnum = asEnum(SESSION_EVENT_TYPES);
registerEnumType(SessionStateEnum, { name: 'SessionState' });
registerEnumType(SessionEventTypeEnum, { name: 'SessionEventType' });
