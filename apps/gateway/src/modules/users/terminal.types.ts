// Terminal capabilities (seed 7.3.2.1) and access network: sent with UA requests and kept as the
// user's equipment information.
import { ArrayMaxSize, ArrayNotEmpty, IsIn, IsInt, IsNumber, IsOptional, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { Field, Float, InputType, Int, ObjectType } from 'type-graphql';
import { LOCAL_RESOURCE_KINDS, VIDEO_CODECS, type LocalResourceKind, type VideoCodec } from '@uve/protocol';
import { ACCESS_NETWORK_TYPES, AccessNetworkTypeEnum, type AccessNetworkType } from './users.enums';
import { LocalResourceKindEnum, VideoCodecEnum } from '../../common/enums';

@ObjectType()
export class AccessNetwork {
  @Field(() => AccessNetworkTypeEnum) type!: AccessNetworkType;
  @Field(() => Int, { nullable: true, description: 'measured or declared downlink, kbit/s' }) downlinkKbps?: number | null;
  @Field(() => Int, { nullable: true }) rttMs?: number | null;
}

@ObjectType({ description: 'Terminal capabilities sent with a UA request (seed 7.3.2.1).' })
export class TerminalCapabilities {
  @Field(() => Int) screenWidth!: number;
  @Field(() => Int) screenHeight!: number;
  @Field(() => Float, { nullable: true }) pixelRatio?: number | null;
  @Field(() => [VideoCodecEnum]) codecs!: VideoCodec[];
  @Field(() => Int, { nullable: true }) maxFrameRate?: number | null;
  @Field(() => [LocalResourceKindEnum]) localResources!: LocalResourceKind[];
  @Field(() => Boolean, { nullable: true }) touch?: boolean | null;
  @Field(() => String, { nullable: true }) platform?: string | null;
  @Field(() => AccessNetwork, { nullable: true }) network?: AccessNetwork | null;
}

@InputType()
export class AccessNetworkInput {
  @Field(() => AccessNetworkTypeEnum) @IsIn(ACCESS_NETWORK_TYPES) type!: AccessNetworkType;
  @Field(() => Int, { nullable: true }) @IsOptional() @IsInt() @Min(1) @Max(100_000_000) downlinkKbps?: number | null;
  @Field(() => Int, { nullable: true }) @IsOptional() @IsInt() @Min(0) @Max(60_000) rttMs?: number | null;
}

@InputType()
export class TerminalCapabilitiesInput {
  @Field(() => Int) @IsInt() @Min(64) @Max(7680) screenWidth!: number;
  @Field(() => Int) @IsInt() @Min(64) @Max(4320) screenHeight!: number;
  @Field(() => Float, { nullable: true }) @IsOptional() @IsNumber() @Min(0.25) @Max(8) pixelRatio?: number | null;
  @Field(() => [VideoCodecEnum]) @ArrayNotEmpty({ message: 'codecs must list at least one codec the terminal decodes' }) @ArrayMaxSize(VIDEO_CODECS.length) @IsIn(VIDEO_CODECS, { each: true })
  codecs!: VideoCodec[];
  @Field(() => Int, { nullable: true }) @IsOptional() @IsInt() @Min(1) @Max(240) maxFrameRate?: number | null;
  @Field(() => [LocalResourceKindEnum]) @ArrayMaxSize(LOCAL_RESOURCE_KINDS.length) @IsIn(LOCAL_RESOURCE_KINDS, { each: true })
  localResources!: LocalResourceKind[];
  @Field(() => Boolean, { nullable: true }) @IsOptional() touch?: boolean | null;
  @Field(() => String, { nullable: true }) @IsOptional() @MaxLength(64) platform?: string | null;
  @Field(() => AccessNetworkInput, { nullable: true }) @IsOptional() @ValidateNested() network?: AccessNetworkInput | null;
}

/** Plain data as stored (jsonb) and sent to VMs. */
export function terminalData(t: TerminalCapabilitiesInput): TerminalCapabilities {
  return {
    screenWidth: t.screenWidth,
    screenHeight: t.screenHeight,
    pixelRatio: t.pixelRatio ?? null,
    codecs: [...new Set(t.codecs)],
    maxFrameRate: t.maxFrameRate ?? null,
    localResources: [...new Set(t.localResources)],
    touch: t.touch ?? null,
    platform: t.platform ?? null,
    network: t.network ? { type: t.network.type, downlinkKbps: t.network.downlinkKbps ?? null, rttMs: t.network.rttMs ?? null } : null,
  };
}
