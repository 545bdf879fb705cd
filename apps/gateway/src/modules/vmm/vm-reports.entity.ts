import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, Unique } from 'typeorm';
import type { VmEventMessage } from '@uve/protocol';

/**
 * The UVE-5 inbox for session reports: each is stored once (a redelivered copy hits the unique key)
 * and applied in the VM's `seq` order, one transaction per report, whatever order the queue
 * delivered them in. A report that cannot be applied stays here with its error, for operators.
 */
@Entity('vm_reports')
@Unique('uq_vm_reports_session_vm_seq', ['sessionId', 'vmId', 'seq'])
@Index('ix_vm_reports_pending', ['appliedAt', 'sessionId'])
export class VmReportRecord {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ type: 'uuid' }) sessionId!: string;
  @Column({ type: 'uuid' }) vmId!: string;
  @Column({ type: 'int' }) seq!: number;
  @Column({ type: 'varchar', length: 64 }) type!: VmEventMessage['type'];
  @Column({ type: 'jsonb' }) message!: Extract<VmEventMessage, { sessionId: string }>;
  @CreateDateColumn({ type: 'timestamptz' }) receivedAt!: Date;
  @Column({ type: 'timestamptz', nullable: true }) appliedAt!: Date | null;
  /** what applying it did: applied, ignored (late/foreign), skipped (gap given up) */
  @Column({ type: 'varchar', length: 16, nullable: true }) result!: string | null;
  @Column({ type: 'int', default: 0 }) attempts!: number;
  @Column({ type: 'timestamptz', nullable: true }) nextAttemptAt!: Date | null;
  @Column({ type: 'varchar', length: 1024, nullable: true }) error!: string | null;
}
