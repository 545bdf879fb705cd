import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { ROLES, RoleEnum, type Role } from './users.enums';
import { TerminalCapabilities } from './terminal.types';

@ObjectType()
@Entity('users')
export class User {
  @Field(() => ID) @PrimaryGeneratedColumn('uuid') id!: string;
  /** stored lower-case: usernames are case-insensitive */
  @Field() @Column({ type: 'varchar', length: 64, unique: true }) username!: string;
  @Field(() => String, { nullable: true }) @Column({ type: 'varchar', length: 128, nullable: true }) displayName!: string | null;
  @Field(() => RoleEnum) @Column({ type: 'enum', enum: ROLES, enumName: 'user_role', default: 'USER' }) role!: Role;
  /** scrypt hash with its parameters and salt; never exposed */
  @Column({ type: 'varchar', length: 255 }) passwordHash!: string;
  /** login tokens carry it; revoking all of the user's tokens increments it */
  @Column({ type: 'int', default: 0 }) tokenGeneration!: number;
  @Field(() => TerminalCapabilities, { nullable: true, description: 'last terminal this user declared (user equipment information)' })
  @Column({ type: 'jsonb', nullable: true })
  equipment!: TerminalCapabilities | null;
  @Field() @CreateDateColumn({ type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ type: 'timestamptz' }) updatedAt!: Date;
}
