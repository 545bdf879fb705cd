// Subscription events go through Redis so that every gateway process on one database delivers
// them; topics are scoped per entity (one session, one user) so a subscriber only wakes for its own.
import { setMaxListeners } from 'node:events';
import { createPubSub } from '@graphql-yoga/subscription';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import IORedis from 'ioredis';
import type { Logger } from './logger';

export interface SessionEventPayload {
  id: string;
  sessionId: string;
  type: string;
  actorId: string | null;
  at: string;
  data: Record<string, unknown> | null;
  /** the session's owner, for notifications and per-event authorization */
  ownerId: string;
}
export interface NotificationPayload {
  at: string;
  invitationId?: string | null;
  sessionEvent?: SessionEventPayload | null;
}
export interface VmEventPayload {
  vmId: string;
  type: string;
  at: string;
  data: Record<string, unknown> | null;
}
export interface ProcurementPayload {
  id: string;
}

export type Topics = {
  SESSION_EVENT: [sessionId: string, payload: SessionEventPayload];
  NOTIFICATION: [userId: string, payload: NotificationPayload];
  VM_EVENT: [payload: VmEventPayload];
  PROCUREMENT: [payload: ProcurementPayload];
};

export type UvePubSub = ReturnType<typeof createPubSub<Topics>> & { close(): Promise<void> };

/** Redis channels carry the deployment's prefix, so deployments sharing a Redis do not hear each other. */
/**
 * Redis outages: both clients reconnect by themselves and the subscriber subscribes again, so
 * subscriptions keep receiving once Redis is back. A publish made while Redis is down waits in the
 * client's queue for a few reconnection attempts, then is dropped with a warning (events stay in
 * PostgreSQL; `replay: true` reads them back), never an unhandled rejection.
 */
export function createUvePubSub(redisUrl: string, prefix: string, log?: Logger): UvePubSub {
  const publishClient = new IORedis(redisUrl, { maxRetriesPerRequest: 10 });
  const subscribeClient = new IORedis(redisUrl);
  let lastWarn = 0;
  const onError = (e: Error) => {
    // a down Redis errors on every reconnection attempt: one line per 5 s is enough
    if (Date.now() - lastWarn < 5000) return;
    lastWarn = Date.now();
    log?.warn('pub/sub Redis error', { error: e.message });
  };
  publishClient.on('error', onError);
  subscribeClient.on('error', onError);
  const safePublisher = new Proxy(publishClient, {
    get: (target, key, receiver) =>
      key === 'publish'
        ? (channel: string, message: string) => target.publish(channel, message).catch((e: Error) => {
          log?.warn('event not published (Redis unavailable)', { channel, error: e.message });
          return 0;
        })
        : Reflect.get(target, key, receiver),
  });
  const eventTarget = createRedisEventTarget<CustomEvent>({ publishClient: safePublisher, subscribeClient });
  // every subscriber adds a listener; the default limit of 10 warns for no reason
  if (eventTarget instanceof EventTarget) setMaxListeners(0, eventTarget);
  const inner = createPubSub<Record<string, [unknown] | [string, unknown]>>({ eventTarget });
  const channel = (topic: string) => `${prefix}:${topic}`;
  const pubsub = {
    publish: (topic: string, ...args: unknown[]) => (inner.publish as (t: string, ...a: unknown[]) => void)(channel(topic), ...args),
    subscribe: (topic: string, ...args: unknown[]) => (inner.subscribe as (t: string, ...a: unknown[]) => unknown)(channel(topic), ...args),
  } as unknown as ReturnType<typeof createPubSub<Topics>>;
  return Object.assign(pubsub, {
    close: async () => {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  });
}
