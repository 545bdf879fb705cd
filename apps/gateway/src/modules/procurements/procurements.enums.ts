// A procurement's progress: requested by a storefront, a VM selected, the UA downloaded and deployed.
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

export const PROCUREMENT_STATUSES = ['REQUESTED', 'VM_SELECTED', 'DOWNLOADING', 'DEPLOYED', 'FAILED'] as const;
export type ProcurementStatus = (typeof PROCUREMENT_STATUSES)[number];

export const ProcurementStatusEnum = asEnum(PROCUREMENT_STATUSES);
registerEnumType(ProcurementStatusEnum, { name: 'ProcurementStatus' });
