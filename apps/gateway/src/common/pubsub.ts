// Subscription events go through Redis so that every gateway process on one database delivers
// them; topics are scoped per entity (one session, one user) so a subscriber only wakes for its own.
import { setMaxListeners } from 'node:events';
import { createPubSub } from '@graphql-yoga/subscription';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import IORedis from 'ioredis';

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
export function createUvePubSub(redisUrl: string, prefix: string): UvePubSub {
  const publishClient = new IORedis(redisUrl);
  const subscribeClient = new IORedis(redisUrl);
  const eventTarget = createRedisEventTarget<CustomEvent>({ publishClient, subscribeClient });
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
