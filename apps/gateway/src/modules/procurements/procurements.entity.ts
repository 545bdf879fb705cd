import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { PROCUREMENT_STATUSES, ProcurementStatusEnum, type ProcurementStatus } from './procurements.enums';
import { Storefront } from '../storefronts/storefronts.entity';
import { Ua } from '../uas/uas.entity';
import { Vm } from '../vms/vms.entity';
import { User } from '../users/users.entity';

@ObjectType()
@Entity('procurements')
@Index('ix_procurements_status_created', ['status', 'createdAt'])
@Index('ix_procurements_storefront', ['storefrontId', 'createdAt'])
export class Procurement {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Storefront, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'storefront_id' }) storefront?: Storefront;
  @Column({ type: 'uuid' }) storefrontId!: string;
  @Field() @Column({ type: 'varchar', length: 256 }) storefrontAppId!: string;
  @Field() @Column({ type: 'varchar', length: 64 }) version!: string;
  @ManyToOne(() => Ua, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'ua_id' }) ua?: Ua | null;
  @Column({ type: 'uuid', nullable: true }) uaId!: string | null;
  @ManyToOne(() => Vm, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'vm_id' }) vm?: Vm | null;
  @Column({ type: 'uuid', nullable: true }) vmId!: string | null;
  /** the admin who procured it (null when the storefront provided it over UVE-7) */
  @ManyToOne(() => User, { onDelete: 'SET NULL', nullable: true }) @JoinColumn({ name: 'requested_by_id' }) requestedBy?: User | null;
  @Column({ type: 'uuid', nullable: true }) requestedById!: string | null;
  @Field(() => ProcurementStatusEnum) @Column({ type: 'enum', enum: PROCUREMENT_STATUSES, enumName: 'procurement_status' }) status!: ProcurementStatus;
  @Field(() => String, { nullable: true }) @Column({ type: 'varchar', length: 1024, nullable: true }) error!: string | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Field() @UpdateDateColumn({ type: 'timestamptz' }) updatedAt!: Date;
}
