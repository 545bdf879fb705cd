import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import type { VmCommand } from '@uve/protocol';
import { Vm } from '../vms/vms.entity';

export const COMMAND_OUTCOMES = ['done', 'expired', 'failed', 'cancelled'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

/**
 * The UVE-2 outbox: a command is written in the same transaction as the state change that needs it
 * and relayed to the VM's queue until the VM acknowledges it or it expires, so a Redis hiccup
 * after the commit cannot leave the database and the VM disagreeing.
 */
@Entity('vm_commands')
@Index('ix_vm_commands_pending', ['outcome', 'nextAttemptAt'])
export class VmCommandRecord {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @ManyToOne(() => Vm, { onDelete: 'CASCADE' }) @JoinColumn({ name: 'vm_id' }) vm?: Vm;
  @Index('ix_vm_commands_vm') @Column({ type: 'uuid' }) vmId!: string;
  @Column({ type: 'uuid', nullable: true }) sessionId!: string | null;
  @Column({ type: 'varchar', length: 64 }) type!: VmCommand['type'];
  @Column({ type: 'jsonb' }) command!: VmCommand;
  @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @Column({ type: 'timestamptz' }) expiresAt!: Date;
  /** when the relay sends it (again) next; backs off while the VM does not acknowledge */
  @Column({ type: 'timestamptz' }) nextAttemptAt!: Date;
  @Column({ type: 'int', default: 0 }) attempts!: number;
  @Column({ type: 'timestamptz', nullable: true }) lastSentAt!: Date | null;
  /** null while pending */
  @Column({ type: 'enum', enum: COMMAND_OUTCOMES, enumName: 'vm_command_outcome', nullable: true }) outcome!: CommandOutcome | null;
  @Column({ type: 'timestamptz', nullable: true }) settledAt!: Date | null;
  @Column({ type: 'varchar', length: 1024, nullable: true }) error!: string | null;
}
