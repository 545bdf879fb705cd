// Who a user is to the VMM, and the access network a terminal reports (UVE-1 terminal data).
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

export const ROLES = ['USER', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];
export const ACCESS_NETWORK_TYPES = ['ETHERNET', 'WIFI', 'CELLULAR_5G', 'CELLULAR_4G', 'CELLULAR_3G', 'UNKNOWN'] as const;
export type AccessNetworkType = (typeof ACCESS_NETWORK_TYPES)[number];

export const RoleEnum = asEnum(ROLES);
export const AccessNetworkTypeEnum = asEnum(ACCESS_NETWORK_TYPES);
registerEnumType(RoleEnum, { name: 'Role' });
registerEnumType(AccessNetworkTypeEnum, { name: 'AccessNetworkType' });
