import { Column, CreateDateColumn, Entity, Generated, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { RECONNECTION_METHODS, type ReconnectionMethod, type StreamParams } from '@uve/protocol';
import { ReconnectionMethodEnum } from '../../common/enums';
import { SESSION_EVENT_TYPES, SESSION_STATES, SessionEventTypeEnum, SessionStateEnum, type SessionEventType, type SessionState } from './sessions.enums';
import { TerminalCapabilities } from '../users/terminal.types';
import { OutputStream } from './sessions.types';
import { User } from '../users/users.entity';
import { Ua } from '../uas/uas.entity';
import { Vm } from '../vms/vms.entity';

@ObjectType()
@Entity('sessions')
@Index('ix_sessions_user_state', ['userId', 'state'])
@Index('ix_sessions_vm_state', ['vmId', 'state'])
@Index('ix_sessions_state_created', ['state', 'createdAt'])
export class Session {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'user_id' }) user?: User;
  @Column({ type: 'uuid' }) userId!: string;
  @ManyToOne(() => Ua, { onDelete: 'RESTRICT' }) @JoinColumn({ name: 'ua_id' }) ua?: Ua;
  @Index('ix_sessions_ua') @Column({ type: 'uuid' }) uaId!: string;
  @Field() @Column({ type: 'varchar', length: 64 }) uaVersion!: string;
  @ManyToOne(() => Vm, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'vm_id' }) vm?: Vm | null;
  @Column({ type: 'uuid', nullable: true }) vmId!: string | null;
  @Field(() => SessionStateEnum) @Column({ type: 'enum', enum: SESSION_STATES, enumName: 'session_state' }) state!: SessionState;
  @Field(() => ReconnectionMethodEnum) @Column({ type: 'enum', enum: RECONNECTION_METHODS, enumName: 'reconnection_method' }) reconnectionMethod!: ReconnectionMethod;
  @Field(() => TerminalCapabilities) @Column({ type: 'jsonb' }) terminal!: TerminalCapabilities;
  @Field(() => OutputStream, { nullable: true, description: 'the Output Stream negotiated when a VM was assigned (null before); a reconnection back on the same VM keeps it, one on another VM negotiates it afresh' })
  @Column({ type: 'jsonb', nullable: true }) stream!: StreamParams | null;
  @ManyToOne(() => User, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'suspend_controller_id' }) suspendController?: User | null;
  @Column({ type: 'uuid', nullable: true }) suspendControllerId!: string | null;
  @ManyToOne(() => User, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'suspended_by_id' }) suspendedBy?: User | null;
  @Column({ type: 'uuid', nullable: true }) suspendedById!: string | null;
  @Field(() => Int) @Column({ type: 'int', default: 0 }) reconnections!: number;
  /** the last UVE-5 report applied from the session's current VM (its per-session seq) */
  @Column({ type: 'int', default: 0 }) lastReportSeq!: number;
  @Column({ type: 'uuid', nullable: true }) restoredFromId!: string | null;
  /** while DISCONNECTED: the VM told to restore the session's VM Data ahead (vmdata.prepareRestore), and which snapshot */
  @ManyToOne(() => Vm, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'restore_ahead_vm_id' }) restoreAheadVm?: Vm | null;
  @Column({ type: 'uuid', nullable: true }) restoreAheadVmId!: string | null;
  @Column({ type: 'uuid', nullable: true }) restoreAheadSnapshotId!: string | null;
  @Column({ type: 'varchar', length: 500, nullable: true }) endReason!: string | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) lastDisconnectAt!: Date | null;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) endedAt!: Date | null;
}

@ObjectType()
@Entity('session_events')
@Index('ix_session_events_session_seq', ['sessionId', 'seq'])
export class SessionEvent {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  /** total order: events of one transaction share their timestamp */
  @Generated('increment') @Column({ type: 'bigint', select: true }) seq!: string;
  @ManyToOne(() => Session, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'session_id' }) session?: Session;
  @Field(() => ID) @Column({ type: 'uuid' }) sessionId!: string;
  @Field(() => SessionEventTypeEnum) @Column({ type: 'enum', enum: SESSION_EVENT_TYPES, enumName: 'session_event_type' }) type!: SessionEventType;
  @ManyToOne(() => User, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'actor_id' }) actor?: User | null;
  @Column({ type: 'uuid', nullable: true }) actorId!: string | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) at!: Date;
  @Field(() => GraphQLJSON, { nullable: true }) @Column({ type: 'jsonb', nullable: true }) data!: Record<string, unknown> | null;
}
