import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { DEPLOYMENT_STATUSES, LOCAL_RESOURCE_KINDS, PLATFORMS, type DeploymentStatus, type LocalResourceKind, type Platform } from '@uve/protocol';
import { DeploymentStatusEnum, PlatformEnum, LocalResourceKindEnum } from '../../common/enums';
import { UA_VERSION_STATUSES, UaVersionStatusEnum, type UaVersionStatus } from './uas.enums';
import { Storefront } from '../storefronts/storefronts.entity';
import { Vm } from '../vms/vms.entity';

@ObjectType({ description: 'A UVE Application.' })
@Entity('uas')
@Unique('uq_uas_storefront_app', ['storefrontId', 'storefrontAppId'])
export class Ua {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @Field() @Column({ type: 'varchar', length: 128 }) name!: string;
  @Field(() => PlatformEnum) @Column({ type: 'enum', enum: PLATFORMS, enumName: 'platform' }) platform!: Platform;
  @Field({ description: 'the version new sessions get' }) @Column({ type: 'varchar', length: 64 }) currentVersion!: string;
  @Field(() => [LocalResourceKindEnum])
  @Column({ type: 'enum', enum: LOCAL_RESOURCE_KINDS, enumName: 'local_resource_kind', array: true, default: '{}' })
  requiredResources!: LocalResourceKind[];
  @Field(() => Int, { nullable: true, description: 'smallest screen the UA can be used on' }) @Column({ type: 'int', nullable: true }) minScreenWidth!: number | null;
  @Field(() => Int, { nullable: true }) @Column({ type: 'int', nullable: true }) minScreenHeight!: number | null;
  @ManyToOne(() => Storefront, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'storefront_id' }) storefront?: Storefront | null;
  @Column({ type: 'uuid', nullable: true }) storefrontId!: string | null;
  @Field(() => String, { nullable: true }) @Column({ type: 'varchar', length: 256, nullable: true }) storefrontAppId!: string | null;
  /** removeUa: no new sessions; each VM drops it once it runs none */
  @Field(() => Date, { nullable: true, description: 'when an admin removed the UA (no new sessions; VMs drop it once idle)' })
  @Column({ type: 'timestamptz', nullable: true }) removedAt!: Date | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}

export interface UaVersionMetadata {
  name: string;
  requiredResources: LocalResourceKind[];
  minScreenWidth: number | null;
  minScreenHeight: number | null;
}

@ObjectType()
@Entity('ua_versions')
@Unique('uq_ua_versions_version', ['uaId', 'version'])
export class UaVersion {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Ua, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'ua_id' }) ua?: Ua;
  @Column({ type: 'uuid' }) uaId!: string;
  @Field() @Column({ type: 'varchar', length: 64 }) version!: string;
  /** absolute package URL (storefront) or builtin:<name> (samples shipped with the agent) */
  @Column({ type: 'varchar', length: 2048 }) packageUrl!: string;
  @Field() @Column({ type: 'char', length: 64 }) sha256!: string;
  @Field(() => Int) @Column({ type: 'int' }) sizeBytes!: number;
  /** catalog truth: only an AVAILABLE version can be requested (see UA_VERSION_STATUSES) */
  @Field(() => UaVersionStatusEnum, { description: 'AVAILABLE once deployed on a VM (or shipped with every VM); users only get AVAILABLE versions' })
  @Column({ type: 'enum', enum: UA_VERSION_STATUSES, enumName: 'ua_version_status', default: 'PENDING' }) status!: UaVersionStatus;
  @Field(() => String, { nullable: true, description: 'why the version is FAILED' }) @Column({ type: 'varchar', length: 1024, nullable: true }) error!: string | null;
  /** what the UA looks like in this version; copied to the UA when the version becomes current */
  @Column({ type: 'jsonb', nullable: true }) metadata!: UaVersionMetadata | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}

@ObjectType()
@Entity('ua_deployments')
@Unique('uq_ua_deployments_ua_vm', ['uaId', 'vmId'])
export class UaDeployment {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Ua, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'ua_id' }) ua?: Ua;
  @Column({ type: 'uuid' }) uaId!: string;
  @ManyToOne(() => Vm, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'vm_id' }) vm?: Vm;
  @Index('ix_ua_deployments_vm') @Column({ type: 'uuid' }) vmId!: string;
  @Field() @Column({ type: 'varchar', length: 64 }) version!: string;
  @Field(() => DeploymentStatusEnum) @Column({ type: 'enum', enum: DEPLOYMENT_STATUSES, enumName: 'deployment_status' }) status!: DeploymentStatus;
  @Field(() => String, { nullable: true }) @Column({ type: 'varchar', length: 1024, nullable: true }) error!: string | null;
  @Field() @UpdateDateColumn({ type: 'timestamptz' }) updatedAt!: Date;
}
