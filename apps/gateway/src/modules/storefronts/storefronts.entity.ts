import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';

@ObjectType()
@Entity('storefronts')
export class Storefront {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  @Field() @Column({ type: 'varchar', length: 128, unique: true }) name!: string;
  @Field({ description: 'base URL the VMs download packages from' }) @Column({ type: 'varchar', length: 2048 }) baseUrl!: string;
  @Field() @Column({ type: 'boolean', default: true }) enabled!: boolean;
  /** sha256 of the API key's secret part; the key itself is shown once */
  @Column({ type: 'varchar', length: 64 }) apiKeyHash!: string;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
}
