import { User } from '../modules/users/users.entity';
import { SigningKey } from '../modules/auth/signing-key.entity';
import { RevokedToken } from '../modules/auth/revoked-token.entity';
import { Storefront } from '../modules/storefronts/storefronts.entity';
import { Ua, UaDeployment, UaVersion } from '../modules/uas/uas.entity';
import { Vm } from '../modules/vms/vms.entity';
import { Session, SessionEvent } from '../modules/sessions/sessions.entity';
import { Monitoring, WatcherGrant } from '../modules/watchers/watchers.entity';
import { Invitation, Participant } from '../modules/invitations/invitations.entity';
import { VmDataChunk, VmDataManifest, VmDataStaged, VmSnapshot } from '../modules/snapshots/snapshots.entity';
import { Procurement } from '../modules/procurements/procurements.entity';
import { VmCommandRecord } from '../modules/vmm/vm-commands.entity';
import { VmReportRecord } from '../modules/vmm/vm-reports.entity';

export const ENTITIES = [
  User, SigningKey, Storefront, Ua, UaVersion, UaDeployment, Vm, Session, SessionEvent,
  WatcherGrant, Monitoring, Invitation, Participant, VmSnapshot, VmDataChunk, VmDataManifest, VmDataStaged, Procurement,
  VmCommandRecord, VmReportRecord, RevokedToken,
];
