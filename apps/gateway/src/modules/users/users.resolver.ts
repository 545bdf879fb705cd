import { Arg, Authorized, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { forbidden } from '../../common/errors';
import { currentAuth, currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { RoleEnum, type Role } from './users.enums';
import { Session } from '../sessions/sessions.entity';
import { TerminalCapabilitiesInput } from './terminal.types';
import { RegisterInput } from './users.inputs';
import { User } from './users.entity';
import { ownsOrAdmin } from '../../common/access';

@ObjectType()
class AuthPayload {
  @Field() token!: string;
  @Field() expiresAt!: Date;
  @Field(() => User) user!: User;
}

@Resolver(() => User)
export class UsersResolver {
  @Query(() => User, { nullable: true })
  me(@Ctx() ctx: Context): User | null {
    return ctx.principal?.kind === 'user' ? ctx.principal.user : null;
  }

  @Mutation(() => AuthPayload)
  register(@Arg('input', () => RegisterInput) input: RegisterInput, @Ctx() ctx: Context): Promise<AuthPayload> {
    return ctx.services.users.register(input, ctx.clientIp);
  }

  @Mutation(() => AuthPayload)
  login(@Arg('username') username: string, @Arg('password') password: string, @Ctx() ctx: Context): Promise<AuthPayload> {
    return ctx.services.users.login(username, password, ctx.clientIp);
  }

  @Authorized()
  @Mutation(() => Boolean, { description: 'ends the login token this request carries, at once (open subscriptions on it close too)' })
  logout(@Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.users.logout(currentAuth(ctx));
  }

  @Authorized('ADMIN')
  @Mutation(() => User, { description: "admin: ends every login token of the user at once (they sign in again); their subscriptions close" })
  revokeUserTokens(@Arg('userId', () => ID) userId: string, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.revokeAllTokens(userId);
  }

  @Authorized()
  @Mutation(() => AuthPayload, { description: 'a token of a few minutes for the caller, e.g. for a web page to open its graphql-ws connection with' })
  issueSubscriptionToken(@Ctx() ctx: Context): Promise<AuthPayload> {
    return ctx.services.users.issueSubscriptionToken(currentUser(ctx));
  }

  @Authorized()
  @Mutation(() => User, { description: 'user equipment information, kept with the user' })
  updateEquipment(@Arg('terminal', () => TerminalCapabilitiesInput) terminal: TerminalCapabilitiesInput, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.updateEquipment(currentUser(ctx), terminal);
  }

  @Authorized('ADMIN')
  @Query(() => [User], { description: 'admin' })
  users(
    @Arg('search', () => String, { nullable: true }) search: string | null,
    @Arg('limit', () => Int, { nullable: true, defaultValue: 50 }) limit: number | null,
    @Arg('offset', () => Int, { nullable: true, defaultValue: 0 }) offset: number | null,
    @Ctx() ctx: Context,
  ): Promise<User[]> {
    return ctx.services.users.list(search, limit, offset);
  }

  @Authorized('ADMIN')
  @Mutation(() => User)
  createUser(@Arg('input', () => RegisterInput) input: RegisterInput, @Arg('role', () => RoleEnum, { defaultValue: 'USER' }) role: Role, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.create(input, role);
  }

  @Authorized('ADMIN')
  @Mutation(() => User)
  setUserRole(@Arg('userId', () => ID) userId: string, @Arg('role', () => RoleEnum) role: Role, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.setRole(userId, role);
  }

  @FieldResolver(() => [Session])
  sessions(@Root() user: User, @Arg('active', () => Boolean, { nullable: true }) active: boolean | null, @Ctx() ctx: Context): Promise<Session[]> {
    const viewer = currentUser(ctx);
    if (!ownsOrAdmin(viewer, user.id)) throw forbidden("Only the user and admins see a user's sessions.");
    return ctx.services.sessions.listForUser(user.id, active);
  }
}
