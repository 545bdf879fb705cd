import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { SNAPSHOT_KINDS, type SnapshotKind } from '@uve/protocol';
import { SnapshotKindEnum } from '../../common/enums';
import { User } from '../users/users.entity';
import { Ua } from '../uas/uas.entity';
import { Session } from '../sessions/sessions.entity';
import { Vm } from '../vms/vms.entity';

@ObjectType({ description: 'VM Data (seed 7.2): a VM snapshot, the state of a VM at one point in time.' })
@Entity('vm_snapshots')
@Index('ix_vm_snapshots_user_ua', ['userId', 'uaId', 'createdAt'])
export class VmSnapshot {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => User, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'user_id' }) user?: User;
  @Column({ type: 'uuid' }) userId!: string;
  @ManyToOne(() => Ua, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'ua_id' }) ua?: Ua;
  @Column({ type: 'uuid' }) uaId!: string;
  @ManyToOne(() => Session, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'session_id' }) session?: Session | null;
  @Index('ix_vm_snapshots_session') @Column({ type: 'uuid', nullable: true }) sessionId!: string | null;
  @Field(() => SnapshotKindEnum) @Column({ type: 'enum', enum: SNAPSHOT_KINDS, enumName: 'snapshot_kind' }) kind!: SnapshotKind;
  @Field(() => Int) @Column({ type: 'int' }) sizeBytes!: number;
  @Field() @Column({ type: 'char', length: 64 }) sha256!: string;
  @ManyToOne(() => Vm, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'source_vm_id' }) sourceVm?: Vm | null;
  @Column({ type: 'uuid', nullable: true }) sourceVmId!: string | null;
  /** where the bytes are kept (the VM Data store) */
  @Column({ type: 'varchar', length: 1024 }) storageKey!: string;
  /** id of the UVE_VM_DATA_KEY its chunks are sealed with; null: stored in clear */
  @Column({ type: 'varchar', length: 16, nullable: true }) encryptionKeyId!: string | null;
  /** sha256 over its chunks' addresses in order (manifestSha256()): a read checks the order by it; null before 1766000001570 */
  @Column({ type: 'char', length: 64, nullable: true }) manifestSha256!: string | null;
  /**
   * its first bytes (VM_DATA_HEAD_BYTES at most), sealed when its chunks are (VmDataStore.headOf):
   * what a restoring VM prepares by before its download begins; null: not kept
   */
  @Column({ type: 'bytea', nullable: true }) head!: Buffer | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) lastRestoredAt!: Date | null;
}

/**
 * One chunk of VM Data (vm-data-store.ts), kept once in PostgreSQL under its address however many
 * snapshots hold it (their manifests), so every gateway can serve it to any VM; sealed with
 * AES-256-GCM when `nonce` is set.
 */
@Entity('vm_data_chunks')
export class VmDataChunk {
  /** sha256 of the plain bytes, or their HMAC under UVE_VM_DATA_KEY when sealed */
  @PrimaryColumn({ type: 'bytea' }) address!: Buffer;
  @Column({ type: 'bytea' }) data!: Buffer;
  @Column({ type: 'bytea', nullable: true }) nonce!: Buffer | null;
  /** what a sealed chunk stored before content addressing is bound to (its snapshot and position); null: its address */
  @Column({ type: 'bytea', nullable: true }) aad!: Buffer | null;
  /** sha256 of `data` as stored, checked on every read */
  @Column({ type: 'bytea' }) sha256!: Buffer;
}

/** A snapshot's chunks in order: its manifest (the chunk cannot go while a manifest refers to it). */
@Entity('vm_data_manifests')
@Index('ix_vm_data_manifests_address', ['address'])
export class VmDataManifest {
  @PrimaryColumn({ type: 'uuid' }) snapshotId!: string;
  @ManyToOne(() => VmSnapshot, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'snapshot_id' }) snapshot?: VmSnapshot;
  @PrimaryColumn({ type: 'int' }) seq!: number;
  @Column({ type: 'bytea' }) address!: Buffer;
  @ManyToOne(() => VmDataChunk, { onDelete: 'NO ACTION' }) @JoinColumn({ name: 'address' }) chunk?: VmDataChunk;
}

/**
 * A live session's FULL state staged ahead of its save, chunk by chunk (seq -> address), while the
 * user plays: the save at a drop or at the end then sends only the chunks that changed since
 * (docs/architecture.md, "VM Data staged ahead"). A chunk cannot go while a staged row refers to it;
 * the rows go with their session, and once it ended.
 */
@Entity('vm_data_staged')
@Index('ix_vm_data_staged_address', ['address'])
export class VmDataStaged {
  @PrimaryColumn({ type: 'uuid' }) sessionId!: string;
  @ManyToOne(() => Session, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'session_id' }) session?: Session;
  @PrimaryColumn({ type: 'int' }) seq!: number;
  @Column({ type: 'bytea' }) address!: Buffer;
  @ManyToOne(() => VmDataChunk, { onDelete: 'NO ACTION' }) @JoinColumn({ name: 'address' }) chunk?: VmDataChunk;
  /** sha256 of the chunk's plain bytes, as the VMM hashed them when staged: what a save names it by */
  @Column({ type: 'bytea' }) plainSha256!: Buffer;
  /** the whole staged state's size and sha256 (the VM's word, as a delta's), the same on each of its rows */
  @Column({ type: 'int' }) stateBytes!: number;
  @Column({ type: 'char', length: 64 }) stateSha256!: string;
  @Column({ type: 'timestamptz' }) stagedAt!: Date;
}

@ObjectType({ description: "A running NO_LOSS session's state as last staged with the VMM (its save at a drop or at the end then sends only the chunks that changed since)" })
export class VmDataStaging {
  @Field({ description: 'when the VM last staged the state' }) stagedAt!: Date;
  @Field(() => Int, { description: 'chunks of 1 MiB the staged state has' }) chunks!: number;
}
