// Rate limits on the operations an attacker repeats (guessing passwords, creating accounts,
// requesting sessions), counted in Redis so every gateway shares the count. When Redis is out, a
// per-process count takes over (insurance) rather than letting everything through.
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { unavailable } from '../../common/errors';

export type Limited = 'login-ip' | 'login-user' | 'register-ip' | 'request-user';

export interface RateLimitSettings {
  loginPerMin: number;
  registerPerMin: number;
  requestPerMin: number;
}

const MESSAGES: Record<Limited, string> = {
  'login-ip': 'Too many sign-in attempts from this address',
  'login-user': 'Too many sign-in attempts for this username',
  'register-ip': 'Too many registrations from this address',
  'request-user': 'Too many application requests',
};

export class RateLimits {
  private readonly limiters: Record<Limited, RateLimiterRedis>;

  constructor(redis: Redis, prefix: string, s: RateLimitSettings) {
    const make = (name: Limited, points: number) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${prefix}:rl:${name}`,
        points,
        duration: 60,
        insuranceLimiter: new RateLimiterMemory({ points, duration: 60 }),
      });
    this.limiters = {
      'login-ip': make('login-ip', s.loginPerMin),
      'login-user': make('login-user', s.loginPerMin),
      'register-ip': make('register-ip', s.registerPerMin),
      'request-user': make('request-user', s.requestPerMin),
    };
  }

  /** Counts one attempt; refuses with UNAVAILABLE, the reason RATE_LIMITED and when to retry. */
  async consume(which: Limited, key: string): Promise<void> {
    try {
      await this.limiters[which].consume(key);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      const retryAfterSec = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw unavailable(`${MESSAGES[which]}; try again in ${retryAfterSec} s.`, { reason: 'RATE_LIMITED', retryAfterSec });
    }
  }

  /** A successful sign-in clears the username's count (only failures should lock an account out). */
  async reset(which: Limited, key: string): Promise<void> {
    await this.limiters[which].delete(key).catch(() => undefined);
  }
}
