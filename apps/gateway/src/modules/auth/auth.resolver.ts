import { Authorized, Ctx, Mutation, Resolver } from 'type-graphql';
import type { Context } from '../../common/context';

@Resolver()
export class AuthResolver {
  @Authorized('ADMIN')
  @Mutation(() => String, {
    description: 'admin: a new token signing key (returns its kid); the previous key keeps verifying until the next rotation, older ones stop. Keys also rotate on schedule (UVE_SIGNING_KEY_MAX_AGE_DAYS).',
  })
  rotateSigningKey(@Ctx() ctx: Context): Promise<string> {
    return ctx.services.keys.rotate();
  }
}
