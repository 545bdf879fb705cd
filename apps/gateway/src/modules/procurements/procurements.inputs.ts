import { ArrayMaxSize, IsHexadecimal, IsIn, IsInt, IsOptional, Length, Matches, Max, Min } from 'class-validator';
import { Field, InputType, Int } from 'type-graphql';
import { LOCAL_RESOURCE_KINDS, PLATFORMS, type LocalResourceKind, type Platform } from '@uve/protocol';
import { LocalResourceKindEnum, PlatformEnum } from '../../common/enums';

@InputType()
export class ProvideApplicationInput {
  @Field({ description: "the storefront's own id for the application" })
  @Length(1, 256) @Matches(/^[^\u0000-\u001f]+$/, { message: 'storefrontAppId must not contain control characters' })
  storefrontAppId!: string;
  @Field() @Length(1, 128) name!: string;
  @Field() @Matches(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, { message: 'version must be 1 to 64 letters, digits, dots, pluses, dashes or underscores' }) version!: string;
  @Field(() => PlatformEnum) @IsIn(PLATFORMS) platform!: Platform;
  @Field({ description: 'path or URL of the package on the storefront (relative paths resolve against its baseUrl)' }) @Length(1, 2048) packageUrl!: string;
  @Field() @Length(64, 64, { message: 'sha256 must be 64 hexadecimal digits' }) @IsHexadecimal({ message: 'sha256 must be 64 hexadecimal digits' }) sha256!: string;
  @Field(() => Int) @IsInt() @Min(1) @Max(2_147_483_647) sizeBytes!: number;
  @Field(() => [LocalResourceKindEnum], { defaultValue: [] }) @ArrayMaxSize(LOCAL_RESOURCE_KINDS.length) @IsIn(LOCAL_RESOURCE_KINDS, { each: true }) requiredResources!: LocalResourceKind[];
  @Field(() => Int, { nullable: true }) @IsOptional() @IsInt() @Min(64) @Max(7680) minScreenWidth?: number | null;
  @Field(() => Int, { nullable: true }) @IsOptional() @IsInt() @Min(64) @Max(4320) minScreenHeight?: number | null;
}

