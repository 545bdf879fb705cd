import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { PLATFORMS, VIDEO_CODECS, VM_PROVIDERS, type Platform, type VideoCodec, type VmProvider } from '@uve/protocol';
import { PlatformEnum, VideoCodecEnum, VmProviderEnum } from '../../common/enums';

/** What is stored; BUSY is not stored but derived from the sessions a ready VM holds. */
export const STORED_VM_STATUSES = ['PROVISIONING', 'IDLE', 'DRAINING', 'OFFLINE', 'FAILED'] as const;
export type StoredVmStatus = (typeof STORED_VM_STATUSES)[number];

@ObjectType({ description: 'What a VM uses, from its last heartbeat: everything it runs (agent, encoders, X servers, UA programs).' })
export class VmLoad {
  @Field(() => Float, { description: '0..1 share of the VM\'s CPU budget (its container\'s CPU limit, else the host\'s cores)' }) cpuLoad!: number;
  @Field(() => Float, { description: 'memory in bytes' }) rssBytes!: number;
  @Field(() => String, { nullable: true, description: 'cgroup (the container counts it) or process-tree (the agent and its descendants)' }) source?: string | null;
}

@ObjectType({ description: 'A Virtual Machine of the UVE Server.' })
@Entity('vms')
@Index('ix_vms_platform_status', ['platform', 'status'])
export class Vm {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @Field() @Column({ type: 'varchar', length: 128 }) name!: string;
  @Field(() => PlatformEnum) @Column({ type: 'enum', enum: PLATFORMS, enumName: 'platform' }) platform!: Platform;
  @Field(() => VmProviderEnum) @Column({ type: 'enum', enum: VM_PROVIDERS, enumName: 'vm_provider' }) provider!: VmProvider;
  @Column({ type: 'enum', enum: STORED_VM_STATUSES, enumName: 'vm_status' }) status!: StoredVmStatus;
  @Field(() => String, { nullable: true, description: 'where UCs connect for UVE-3' }) @Column({ type: 'varchar', length: 512, nullable: true }) endpoint!: string | null;
  @Field(() => [VideoCodecEnum]) @Column({ type: 'enum', enum: VIDEO_CODECS, enumName: 'video_codec', array: true, default: '{}' }) codecs!: VideoCodec[];
  @Field(() => Int) @Column({ type: 'int' }) capacity!: number;
  @Field(() => Date, { nullable: true }) @Column({ type: 'timestamptz', nullable: true }) lastHeartbeatAt!: Date | null;
  /** sha256 of the VM's secret (VM Data endpoint credential) */
  @Column({ type: 'varchar', length: 64, nullable: true }) secretHash!: string | null;
  /** provider's handle: pid, container id */
  @Column({ type: 'varchar', length: 256, nullable: true }) providerRef!: string | null;
  @Field(() => VmLoad, { nullable: true, description: 'load from the last heartbeat (null before the first)' })
  @Column({ type: 'jsonb', nullable: true })
  load!: VmLoad | null;
  @Field(() => String, { nullable: true, description: 'why the VM is in its status when that is not plain (launch failure, lost heartbeat, removal)' })
  @Column({ type: 'varchar', length: 500, nullable: true })
  statusReason!: string | null;
  @Field(() => String, { nullable: true, description: 'why it was started: by an admin, to keep the warm pool, for requests waiting, because the others ran out of slots or CPU' })
  @Column({ type: 'varchar', length: 500, nullable: true })
  startReason!: string | null;
  /** when its provider destroyed it (OFFLINE/FAILED records are pruned a while after) */
  @Column({ type: 'timestamptz', nullable: true }) destroyedAt!: Date | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ type: 'timestamptz' }) updatedAt!: Date;
}
