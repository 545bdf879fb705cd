import { Field, ID, Int, ObjectType } from 'type-graphql';
import type { StreamParams, VideoCodec } from '@uve/protocol';
import { VideoCodecEnum } from '../../common/enums';

@ObjectType({ description: 'What a UC needs to open the UVE-3 application session with the selected VM.' })
export class SessionConnection {
  @Field(() => ID) vmId!: string;
  @Field({ description: "WebSocket URL of the VM's session endpoint" }) url!: string;
  @Field({ description: 'short-lived token the VM checks; bound to session, user and role' }) token!: string;
  @Field() expiresAt!: Date;
}

@ObjectType({ description: 'The Output Stream negotiated for a session from its terminal capabilities and the VM (UVE-3): what the UC will receive.' })
export class OutputStream implements StreamParams {
  @Field(() => VideoCodecEnum) codec!: VideoCodec;
  @Field(() => Int) width!: number;
  @Field(() => Int) height!: number;
  @Field(() => Int, { description: 'frames per second at most; pictures come on change, not on a clock' }) maxFps!: number;
  @Field(() => Int, { description: 'target bitrate, kbit/s (H264)' }) bitrateKbps!: number;
}
