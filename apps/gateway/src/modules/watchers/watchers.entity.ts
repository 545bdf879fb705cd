import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { WATCHER_PRIVILEGES, WatcherPrivilegeEnum, type WatcherPrivilege } from './watchers.enums';
import { User } from '../users/users.entity';
import { Session } from '../sessions/sessions.entity';

@ObjectType({ description: 'Standing right of one user (watcher) to monitor another (watchee), given by an admin.' })
@Entity('watcher_grants')
@Unique('uq_watcher_grants_pair', ['watcherId', 'watcheeId'])
export class WatcherGrant {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'watcher_id' }) watcher?: User;
  @Column({ type: 'uuid' }) watcherId!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'watchee_id' }) watchee?: User;
  @Index('ix_watcher_grants_watchee') @Column({ type: 'uuid' }) watcheeId!: string;
  @Field(() => [WatcherPrivilegeEnum]) @Column({ type: 'enum', enum: WATCHER_PRIVILEGES, enumName: 'watcher_privilege', array: true }) privileges!: WatcherPrivilege[];
  /**
   * set while the watcher monitors the watchee (requestMonitoring until they stop): a session the
   * watchee starts meanwhile is offered to the watcher too
   */
  @Column({ type: 'timestamptz', nullable: true }) monitoringSince!: Date | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Field() @UpdateDateColumn({ type: 'timestamptz' }) updatedAt!: Date;
}

@ObjectType({ description: 'One watcher monitoring one session.' })
@Entity('monitorings')
@Index('ix_monitorings_session', ['sessionId', 'endedAt'])
@Index('ix_monitorings_watcher', ['watcherId', 'endedAt'])
export class Monitoring {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Session, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'session_id' }) session?: Session;
  @Column({ type: 'uuid' }) sessionId!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'watcher_id' }) watcher?: User;
  @Column({ type: 'uuid' }) watcherId!: string;
  @ManyToOne(() => WatcherGrant, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'grant_id' }) grant?: WatcherGrant | null;
  @Column({ type: 'uuid', nullable: true }) grantId!: string | null;
  @Field(() => [WatcherPrivilegeEnum]) @Column({ type: 'enum', enum: WATCHER_PRIVILEGES, enumName: 'watcher_privilege', array: true }) privileges!: WatcherPrivilege[];
  @Field() @CreateDateColumn({ type: 'timestamptz' }) startedAt!: Date;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) endedAt!: Date | null;
}
