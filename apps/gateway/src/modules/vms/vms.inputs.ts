import { IsIn, IsInt, IsOptional, Length, Max, Min } from 'class-validator';
import { Field, InputType, Int } from 'type-graphql';
import { PLATFORMS, VM_PROVIDERS, type Platform, type VmProvider } from '@uve/protocol';
import { PlatformEnum, VmProviderEnum } from '../../common/enums';

@InputType()
export class ProvisionVmInput {
  @Field(() => PlatformEnum) @IsIn(PLATFORMS) platform!: Platform;
  @Field(() => VmProviderEnum, { nullable: true }) @IsOptional() @IsIn(VM_PROVIDERS) provider?: VmProvider | null;
  @Field(() => Int, { nullable: true, defaultValue: 1 }) @IsOptional() @IsInt() @Min(1) @Max(64) capacity?: number | null;
  @Field(() => String, { nullable: true }) @IsOptional() @Length(1, 128) name?: string | null;
}
