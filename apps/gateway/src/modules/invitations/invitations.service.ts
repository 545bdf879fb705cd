// Invitations and PLAYER/VIEWER guests: the records exist; the flow arrives with its issue.
import { IsNull, type DataSource } from 'typeorm';
import type { InvitationStatus } from '../../graphql/enums';
import { Invitation, Participant } from './invitations.entity';

export class InvitationsService {
  constructor(private readonly ds: DataSource) {}

  participantsOf(sessionId: string): Promise<Participant[]> {
    return this.ds.getRepository(Participant).find({ where: { sessionId, leftAt: IsNull() }, order: { joinedAt: 'ASC' } });
  }

  listFor(userId: string, status: InvitationStatus | null | undefined): Promise<Invitation[]> {
    return this.ds.getRepository(Invitation).find({ where: status ? { toId: userId, status } : { toId: userId }, order: { createdAt: 'DESC' }, take: 200 });
  }

  findById(id: string): Promise<Invitation | null> {
    return this.ds.getRepository(Invitation).findOneBy({ id });
  }
}
