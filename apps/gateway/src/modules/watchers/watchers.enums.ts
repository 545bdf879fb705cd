// What a Watcher may do with its watchee's sessions.
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

export const WATCHER_PRIVILEGES = ['VIEW', 'SUSPEND'] as const;
export type WatcherPrivilege = (typeof WATCHER_PRIVILEGES)[number];

export const WatcherPrivilegeEnum = asEnum(WATCHER_PRIVILEGES);
registerEnumType(WatcherPrivilegeEnum, {
  name: 'WatcherPrivilege',
  valuesConfig: {
    VIEW: { description: 'see the Output Stream' },
    SUSPEND: { description: "suspend and resume the watchee's sessions (one suspend controller per session at a time)" },
  },
});
