// Every operation the console sends; types come from codegen (src/gql, generated from the schema).
import { graphql } from '@/gql';

export const LoginDoc = graphql(`
  mutation Login($username: String!, $password: String!) {
    login(username: $username, password: $password) { token expiresAt user { id username role } }
  }
`);

export const SubscriptionTokenDoc = graphql(`
  mutation SubscriptionToken { issueSubscriptionToken { token expiresAt } }
`);

export const MeDoc = graphql(`
  query Me { me { id username displayName role } }
`);

export const VmFieldsDoc = graphql(`
  fragment VmFields on Vm { id name platform provider status statusReason startReason load { cpuLoad rssBytes source } capacity activeSessions codecs endpoint lastHeartbeatAt createdAt }
`);

export const VmsDoc = graphql(`
  query Vms {
    vms { ...VmFields deployments { id status version ua { id name } } }
    vmPool { platform warmTarget idleVms busyVms startingVms hotVms freeSlots waitingRequests wantsMore reason unavailable }
  }
`);

export const VmEventsDoc = graphql(`
  subscription VmEvents { vmEvents { type at data vm { ...VmFields } } }
`);

export const ProvisionVmDoc = graphql(`
  mutation ProvisionVm($input: ProvisionVmInput!) { provisionVm(input: $input) { ...VmFields } }
`);

export const DrainVmDoc = graphql(`
  mutation DrainVm($id: ID!) { drainVm(id: $id) { ...VmFields } }
`);

export const RemoveVmDoc = graphql(`
  mutation RemoveVm($id: ID!) { removeVm(id: $id) { ...VmFields } }
`);

export const DashboardDoc = graphql(`
  query Dashboard {
    vms { ...VmFields }
    live: sessions(limit: 200) { id state createdAt user { username } ua { name } vm { name } }
    uas { id }
    users(limit: 200) { id }
    storefronts { id enabled }
  }
`);

export const SessionFieldsDoc = graphql(`
  fragment SessionFields on Session {
    id state createdAt startedAt endedAt reconnections reconnectionMethod uaVersion
    user { id username } ua { id name platform } vm { id name }
  }
`);

export const SessionsDoc = graphql(`
  query Sessions($state: SessionState, $userId: ID, $limit: Int, $offset: Int) {
    sessions(state: $state, userId: $userId, limit: $limit, offset: $offset) { ...SessionFields }
  }
`);

export const SessionDoc = graphql(`
  query Session($id: ID!) {
    session(id: $id) {
      ...SessionFields
      terminal { screenWidth screenHeight codecs localResources }
      events(last: 200) { id type at data actor { username } }
    }
  }
`);

export const SessionEventsDoc = graphql(`
  subscription SessionEvents($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId, replay: true) { id type at data actor { username } }
  }
`);

export const TerminateSessionDoc = graphql(`
  mutation TerminateSession($sessionId: ID!, $reason: String) { terminateSession(sessionId: $sessionId, reason: $reason) { ...SessionFields } }
`);

export const UasDoc = graphql(`
  query Uas {
    uas {
      id name platform currentVersion minScreenWidth minScreenHeight requiredResources createdAt
      storefront { name }
      versions { version sizeBytes sha256 createdAt }
      deployments { id status version error vm { id name } }
    }
  }
`);

export const CatalogDoc = graphql(`
  query Catalog { uas { id name platform currentVersion minScreenWidth minScreenHeight requiredResources } }
`);

export const UsersDoc = graphql(`
  query Users($search: String, $limit: Int, $offset: Int) {
    users(search: $search, limit: $limit, offset: $offset) { id username displayName role createdAt }
  }
`);

export const SetUserRoleDoc = graphql(`
  mutation SetUserRole($userId: ID!, $role: Role!) { setUserRole(userId: $userId, role: $role) { id role } }
`);

export const CreateUserDoc = graphql(`
  mutation CreateUser($input: RegisterInput!, $role: Role!) { createUser(input: $input, role: $role) { id username role } }
`);

export const StorefrontsDoc = graphql(`
  query Storefronts { storefronts { id name baseUrl enabled createdAt } }
`);

export const RegisterStorefrontDoc = graphql(`
  mutation RegisterStorefront($name: String!, $baseUrl: String!) {
    registerStorefront(name: $name, baseUrl: $baseUrl) { apiKey storefront { id name } }
  }
`);

export const SetStorefrontEnabledDoc = graphql(`
  mutation SetStorefrontEnabled($id: ID!, $enabled: Boolean!) { setStorefrontEnabled(id: $id, enabled: $enabled) { id enabled } }
`);

export const WatcherGrantsDoc = graphql(`
  query WatcherGrants {
    watcherGrants { id privileges createdAt updatedAt watcher { id username } watchee { id username } }
    users(limit: 200) { id username }
  }
`);

export const AssignWatcherDoc = graphql(`
  mutation AssignWatcher($watcherId: ID!, $watcheeId: ID!, $privileges: [WatcherPrivilege!]!) {
    assignWatcher(watcherId: $watcherId, watcheeId: $watcheeId, privileges: $privileges) { id }
  }
`);

export const UpdateWatcherPrivilegesDoc = graphql(`
  mutation UpdateWatcherPrivileges($grantId: ID!, $privileges: [WatcherPrivilege!]!) {
    updateWatcherPrivileges(grantId: $grantId, privileges: $privileges) { id privileges }
  }
`);

export const RevokeWatcherDoc = graphql(`
  mutation RevokeWatcher($grantId: ID!) { revokeWatcher(grantId: $grantId) }
`);

export const RequestApplicationDoc = graphql(`
  mutation RequestApplication($input: RequestApplicationInput!) {
    requestApplication(input: $input) { id state connection { url token expiresAt } }
  }
`);

export const EndSessionDoc = graphql(`
  mutation EndSession($sessionId: ID!) { endSession(sessionId: $sessionId) { id state } }
`);

export const SessionConnectionDoc = graphql(`
  query SessionConnection($id: ID!) { session(id: $id) { id state connection { url token expiresAt } } }
`);

export const ProcurementFieldsDoc = graphql(`
  fragment ProcurementFields on Procurement { id status error version storefrontAppId createdAt updatedAt storefront { id name } ua { id name } vm { id name } }
`);

export const ProcurementsDoc = graphql(`
  query Procurements {
    procurements(limit: 100) { ...ProcurementFields }
    storefronts { id name baseUrl enabled }
  }
`);

export const ProcureApplicationDoc = graphql(`
  mutation ProcureApplication($storefrontId: ID!, $input: ProvideApplicationInput!) {
    procureApplication(storefrontId: $storefrontId, input: $input) { ...ProcurementFields }
  }
`);

export const ProcurementUpdatesDoc = graphql(`
  subscription ProcurementUpdates {
    procurementUpdates { ...ProcurementFields }
  }
`);

export const StorefrontDoc = graphql(`
  query StorefrontBase { storefronts { id baseUrl enabled } }
`);
