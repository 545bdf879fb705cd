// An invitation's life, and the role it gives its invitee in the session.
import { registerEnumType } from 'type-graphql';
import { asEnum } from '../../common/enums';

export const PARTICIPANT_ROLES = ['VIEWER', 'PLAYER'] as const;
export type ParticipantRole = (typeof PARTICIPANT_ROLES)[number];
export const INVITATION_STATUSES = ['PENDING', 'ACCEPTED', 'REJECTED', 'REVOKED', 'EXPIRED'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];

export const ParticipantRoleEnum = asEnum(PARTICIPANT_ROLES);
export const InvitationStatusEnum = asEnum(INVITATION_STATUSES);
registerEnumType(ParticipantRoleEnum, { name: 'ParticipantRole' });
registerEnumType(InvitationStatusEnum, { name: 'InvitationStatus' });
