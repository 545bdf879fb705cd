import 'reflect-metadata';
import { buildSchema } from 'type-graphql';
import { DateTimeResolver } from 'graphql-scalars';
import type { GraphQLSchema } from 'graphql';
import { authChecker } from '../common/auth-checker';
import '../common/enums';
import { UsersResolver } from '../modules/users/users.resolver';
import { AuthResolver } from '../modules/auth/auth.resolver';
import { StorefrontsResolver } from '../modules/storefronts/storefronts.resolver';
import { UasResolver, UaDeploymentsResolver } from '../modules/uas/uas.resolver';
import { VmsResolver, VmEventsResolver } from '../modules/vms/vms.resolver';
import { SessionsResolver, SessionEventsResolver } from '../modules/sessions/sessions.resolver';
import { WatcherGrantsResolver, MonitoringResolver } from '../modules/watchers/watchers.resolver';
import { InvitationsResolver, ParticipantsResolver } from '../modules/invitations/invitations.resolver';
import { SnapshotsResolver } from '../modules/snapshots/snapshots.resolver';
import { ProcurementsResolver } from '../modules/procurements/procurements.resolver';
import { NotificationsResolver } from '../modules/notifications/notifications.resolver';

export function buildUveSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [
      UsersResolver, AuthResolver, StorefrontsResolver, UasResolver, UaDeploymentsResolver, VmsResolver, VmEventsResolver,
      SessionsResolver, SessionEventsResolver, WatcherGrantsResolver, MonitoringResolver, InvitationsResolver,
      ParticipantsResolver, SnapshotsResolver, ProcurementsResolver, NotificationsResolver,
    ],
    scalarsMap: [{ type: Date, scalar: DateTimeResolver }],
    authChecker,
    validate: { forbidUnknownValues: false },
    emitSchemaFile: false,
    // every subscription brings its own `subscribe` (scoped topic + per-event authorization);
    // type-graphql insists on a pubSub all the same
    pubSub: {
      publish: () => {
        throw new Error('publish through Services.pubsub');
      },
      subscribe: () => {
        throw new Error('subscriptions declare their own subscribe');
      },
    },
  });
}
