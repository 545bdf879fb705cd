import { IsOptional, Length, Matches, MaxLength } from 'class-validator';
import { Field, InputType } from 'type-graphql';

@InputType()
export class RegisterInput {
  @Field()
  @Matches(/^[A-Za-z0-9._-]{3,64}$/, { message: 'username must be 3 to 64 letters, digits, dots, dashes or underscores' })
  username!: string;
  @Field() @Length(8, 256, { message: 'password must have 8 to 256 characters' }) password!: string;
  @Field(() => String, { nullable: true }) @IsOptional() @MaxLength(128) displayName?: string | null;
}
