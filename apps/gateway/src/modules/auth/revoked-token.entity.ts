import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** Login tokens ended before their expiry (logout); kept until they would have expired anyway. */
@Entity('revoked_tokens')
export class RevokedToken {
  @PrimaryColumn({ type: 'uuid' }) jti!: string;
  @Column({ type: 'uuid' }) userId!: string;
  @Index('ix_revoked_tokens_expires') @Column({ type: 'timestamptz' }) expiresAt!: Date;
}
