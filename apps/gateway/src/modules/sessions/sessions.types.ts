import { Field, ID, ObjectType } from 'type-graphql';

@ObjectType({ description: 'What a UC needs to open the UVE-3 application session with the selected VM.' })
export class SessionConnection {
  @Field(() => ID) vmId!: string;
  @Field({ description: "WebSocket URL of the VM's session endpoint" }) url!: string;
  @Field({ description: 'short-lived token the VM checks; bound to session, user and role' }) token!: string;
  @Field() expiresAt!: Date;
}
