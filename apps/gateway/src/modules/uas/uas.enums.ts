// A UA version's state in the catalog.
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

/** A UA version in the catalog: PENDING until some VM installed it, FAILED when its procurement failed. */
export const UA_VERSION_STATUSES = ['PENDING', 'AVAILABLE', 'FAILED'] as const;
export type UaVersionStatus = (typeof UA_VERSION_STATUSES)[number];

export const UaVersionStatusEnum = asEnum(UA_VERSION_STATUSES);
registerEnumType(UaVersionStatusEnum, { name: 'UaVersionStatus' });
