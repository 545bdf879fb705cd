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
  @Field(() => ID, {
    nullable: true,
    description: "after a drop: the session this terminal was in. If the VMM has not heard of the drop yet (the VM's report is on its way, or the VM has not noticed a connection that went silent), that session goes on where it runs: the terminal's new connection replaces the old one on the same VM and nothing is restored or started. A DISCONNECTED one continues as without it. Ignored with fresh.",
  })
  sessionId?: string | null;
}
