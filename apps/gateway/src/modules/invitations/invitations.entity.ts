import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { INVITATION_STATUSES, InvitationStatusEnum, PARTICIPANT_ROLES, ParticipantRoleEnum, type InvitationStatus, type ParticipantRole } from './invitations.enums';
import { User } from '../users/users.entity';
import { Session } from '../sessions/sessions.entity';

@ObjectType()
@Entity('invitations')
@Index('ix_invitations_to_status', ['toId', 'status'])
@Index('ix_invitations_session', ['sessionId'])
export class Invitation {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Session, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'session_id' }) session?: Session;
  @Column({ type: 'uuid' }) sessionId!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'from_id' }) from?: User;
  @Column({ type: 'uuid' }) fromId!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'to_id' }) to?: User;
  @Column({ type: 'uuid' }) toId!: string;
  @Field(() => ParticipantRoleEnum) @Column({ type: 'enum', enum: PARTICIPANT_ROLES, enumName: 'participant_role' }) role!: ParticipantRole;
  @Field(() => InvitationStatusEnum) @Column({ type: 'enum', enum: INVITATION_STATUSES, enumName: 'invitation_status', default: 'PENDING' }) status!: InvitationStatus;
  @Field(() => String, { nullable: true }) @Column({ type: 'varchar', length: 500, nullable: true }) rejectionReason!: string | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) respondedAt!: Date | null;
}

/** A guest in a session (an accepted invitation). */
@ObjectType()
@Entity('participants')
@Index('ix_participants_session', ['sessionId', 'leftAt'])
export class Participant {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Session, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'session_id' }) session?: Session;
  @Column({ type: 'uuid' }) sessionId!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'user_id' }) user?: User;
  @Column({ type: 'uuid' }) userId!: string;
  @ManyToOne(() => Invitation, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'invitation_id' }) invitation?: Invitation | null;
  @Column({ type: 'uuid', nullable: true }) invitationId!: string | null;
  @Field(() => ParticipantRoleEnum) @Column({ type: 'enum', enum: PARTICIPANT_ROLES, enumName: 'participant_role' }) role!: ParticipantRole;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) joinedAt!: Date;
  @Column({ type: 'timestamptz', nullable: true }) leftAt!: Date | null;
}
