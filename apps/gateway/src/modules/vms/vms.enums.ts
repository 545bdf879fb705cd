// A VM's status in the pool, and the events its history records.
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

export const VM_STATUSES = ['PROVISIONING', 'IDLE', 'BUSY', 'DRAINING', 'OFFLINE', 'FAILED'] as const;
export type VmStatus = (typeof VM_STATUSES)[number];
export const VM_EVENT_TYPES = ['PROVISIONED', 'STATUS_CHANGED', 'HEARTBEAT_LOST', 'DEPLOYMENT_CHANGED', 'REMOVED'] as const;
export type VmEventType = (typeof VM_EVENT_TYPES)[number];

export const VmStatusEnum = asEnum(VM_STATUSES);
export const VmEventTypeEnum = asEnum(VM_EVENT_TYPES);
registerEnumType(VmStatusEnum, { name: 'VmStatus' });
registerEnumType(VmEventTypeEnum, { name: 'VmEventType' });
