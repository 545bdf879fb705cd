import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import type { JWK } from 'jose';

/**
 * The gateway's ES256 signing key, shared by every gateway process on the database: login tokens
 * and UVE-3 session tokens signed by one gateway verify on all, and VMs fetch the public half.
 */
@Entity('signing_keys')
export class SigningKey {
  @PrimaryColumn({ type: 'varchar', length: 64 }) kid!: string;
  @Column({ type: 'jsonb' }) privateJwk!: JWK;
  @Column({ type: 'jsonb' }) publicJwk!: JWK;
  @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}
