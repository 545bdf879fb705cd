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
    live: sessions(limit: 200) { id state createdAt endedAt user { username } ua { name } vm { name } }
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
  query Sessions($state: SessionState, $userId: ID, $uaId: ID, $vmId: ID, $limit: Int, $offset: Int) {
    sessions(state: $state, userId: $userId, uaId: $uaId, vmId: $vmId, limit: $limit, offset: $offset) { ...SessionFields }
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
      id name platform currentVersion minScreenWidth minScreenHeight requiredResources createdAt removedAt
      storefront { name }
      versions { version sizeBytes sha256 status createdAt }
      deployments { ...DeploymentFields }
    }
    vms { id name platform status }
  }
`);

export const CatalogDoc = graphql(`
  query Catalog { uas { id name platform currentVersion minScreenWidth minScreenHeight requiredResources } }
`);

export const EquipmentDoc = graphql(`
  fragment Equipment on TerminalCapabilities { screenWidth screenHeight pixelRatio codecs localResources maxFrameRate touch platform network { type downlinkKbps rttMs } }
`);

export const UsersDoc = graphql(`
  query Users($search: String, $limit: Int, $offset: Int) {
    users(search: $search, limit: $limit, offset: $offset) { id username displayName role createdAt equipment { ...Equipment } }
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

export const SessionFiltersDoc = graphql(`
  query SessionFilters { users(limit: 200) { id username } uas { id name } vms { id name } }
`);

export const SuspendSessionDoc = graphql(`
  mutation SuspendSession($sessionId: ID!, $reason: String) { suspendSession(sessionId: $sessionId, reason: $reason) { ...SessionFields } }
`);

export const ResumeSessionDoc = graphql(`
  mutation ResumeSession($sessionId: ID!) { resumeSession(sessionId: $sessionId) { ...SessionFields } }
`);

export const DeploymentFieldsDoc = graphql(`
  fragment DeploymentFields on UaDeployment { id status version error vm { id name } }
`);

export const DeployUaDoc = graphql(`
  mutation DeployUa($uaId: ID!, $vmId: ID, $version: String) { deployUa(uaId: $uaId, vmId: $vmId, version: $version) { ...DeploymentFields } }
`);

export const UpdateUaDoc = graphql(`
  mutation UpdateUa($uaId: ID!, $version: String!) { updateUa(uaId: $uaId, version: $version) { ...DeploymentFields } }
`);

export const RemoveUaDoc = graphql(`
  mutation RemoveUa($uaId: ID!, $vmId: ID) { removeUa(uaId: $uaId, vmId: $vmId) { ...DeploymentFields } }
`);

export const SnapshotsDoc = graphql(`
  query Snapshots($userId: ID, $uaId: ID, $limit: Int, $offset: Int) {
    snapshots(userId: $userId, uaId: $uaId, limit: $limit, offset: $offset) {
      id kind sizeBytes sha256 createdAt lastRestoredAt
      user { id username } ua { id name } session { id } sourceVm { id name }
    }
  }
`);

export const SnapshotFiltersDoc = graphql(`
  query SnapshotFilters { users(limit: 200) { id username } uas { id name } }
`);

export const DeleteSnapshotDoc = graphql(`
  mutation DeleteSnapshot($id: ID!) { deleteSnapshot(id: $id) }
`);

export const UpdateEquipmentDoc = graphql(`
  mutation UpdateEquipment($terminal: TerminalCapabilitiesInput!) { updateEquipment(terminal: $terminal) { id equipment { ...Equipment } } }
`);

export const MyEquipmentDoc = graphql(`
  query MyEquipment { me { id equipment { ...Equipment } } }
`);

export const InvitationFieldsDoc = graphql(`
  fragment InvitationFields on Invitation {
    id status role createdAt respondedAt rejectionReason
    from { id username } session { id state ua { id name } }
  }
`);

export const MyInvitationsDoc = graphql(`
  query MyInvitations($status: InvitationStatus) { myInvitations(status: $status) { ...InvitationFields } }
`);

export const RespondToInvitationDoc = graphql(`
  mutation RespondToInvitation($invitationId: ID!, $accept: Boolean!, $rejectionReason: String) {
    respondToInvitation(invitationId: $invitationId, accept: $accept, rejectionReason: $rejectionReason) { ...InvitationFields }
  }
`);

export const MyWatcherGrantsDoc = graphql(`
  query MyWatcherGrants { me { id } myWatcherGrants { id privileges watcher { id username } watchee { id username } } }
`);

export const MonitoringFieldsDoc = graphql(`
  fragment MonitoringFields on Monitoring {
    id privileges startedAt endedAt
    connection { url token expiresAt }
    session { id state ua { id name } user { id username } }
  }
`);

export const RequestMonitoringDoc = graphql(`
  mutation RequestMonitoring($watcheeId: ID!) { requestMonitoring(watcheeId: $watcheeId) { ...MonitoringFields } }
`);

export const StopMonitoringDoc = graphql(`
  mutation StopMonitoring($monitoringId: ID!) { stopMonitoring(monitoringId: $monitoringId) { id endedAt } }
`);

export const MyNotificationsDoc = graphql(`
  subscription MyNotifications { notifications { at invitation { id } sessionEvent { id type } } }
`);
