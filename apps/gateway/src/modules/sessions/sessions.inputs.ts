import { IsBoolean, IsIn, ValidateNested } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { RECONNECTION_METHODS, type ReconnectionMethod } from '@uve/protocol';
import { ReconnectionMethodEnum } from '../../common/enums';
import { TerminalCapabilitiesInput } from '../users/terminal.types';

@InputType()
export class RequestApplicationInput {
  @Field(() => ID) uaId!: string;
  @Field(() => TerminalCapabilitiesInput) @ValidateNested() terminal!: TerminalCapabilitiesInput;
  @Field(() => ReconnectionMethodEnum, { defaultValue: 'NORMAL' }) @IsIn(RECONNECTION_METHODS) reconnectionMethod!: ReconnectionMethod;
  @Field({ defaultValue: false, description: 'start the UA afresh: neither the DISCONNECTED session nor the VM Data of this UA is resumed' })
  @IsBoolean()
  fresh!: boolean;
}
