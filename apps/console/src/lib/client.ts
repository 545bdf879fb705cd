'use client';
// Browser side: queries and mutations through the console's /api/graphql (the login token stays in
// its HttpOnly cookie), subscriptions over graphql-ws straight to the gateway with a short-lived token.
import { useCallback, useEffect, useRef, useState } from 'react';
import { createClient, type Client } from 'graphql-ws';
import { notifications } from '@mantine/notifications';
import type { TypedDocumentString } from '@/gql/graphql';
import { coalesced, QueryOrder } from './query-order';

export class ApiError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export async function gql<R, V>(doc: TypedDocumentString<R, V>, variables: V): Promise<R> {
  let res: Response;
  try {
    res = await fetch('/api/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: doc.toString(), variables }) });
  } catch {
    throw new ApiError('The console does not answer; check your network.', 'UNAVAILABLE');
  }
  if (res.status === 401) {
    window.location.assign('/login');
    throw new ApiError('Your sign-in has expired; sign in again.', 'UNAUTHENTICATED');
  }
  const body = (await res.json()) as { data?: R | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
  const err = body.errors?.[0];
  if (err) throw new ApiError(err.message, err.extensions?.code ?? 'INTERNAL');
  if (!body.data) throw new ApiError('The gateway sent no data.', 'INTERNAL');
  return body.data;
}

/** Runs a mutation and shows the outcome as a notification; returns null when it was refused. */
export async function act<R, V>(doc: TypedDocumentString<R, V>, variables: V, done?: string): Promise<R | null> {
  try {
    const r = await gql(doc, variables);
    if (done) notifications.show({ color: 'green', message: done });
    return r;
  } catch (e) {
    notifications.show({ color: 'red', title: title(e), message: (e as Error).message });
    return null;
  }
}

function title(e: unknown): string {
  const code = e instanceof ApiError ? e.code : '';
  if (code === 'UNAVAILABLE') return 'Not available yet';
  if (code === 'FORBIDDEN') return 'Not allowed';
  if (code === 'BAD_USER_INPUT') return 'Check the input';
  if (code === 'CONFLICT') return 'Conflict';
  if (code === 'NOT_FOUND') return 'Not found';
  return 'Request failed';
}

export interface QueryState<R> {
  data: R | null;
  error: ApiError | null;
  loading: boolean;
  refetch: () => Promise<void>;
  setData: (update: (d: R) => R) => void;
}

/** A query that runs on mount and whenever `variables` change. */
export function useQuery<R, V>(doc: TypedDocumentString<R, V>, variables: V, initial: R | null = null): QueryState<R> {
  const [data, setDataState] = useState<R | null>(initial);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(initial === null);
  const key = JSON.stringify(variables);
  const order = useRef(new QueryOrder());
  const fetchOnce = async () => {
    const n = order.current.begin();
    setLoading(true);
    let answer: { data: R } | { error: ApiError };
    try {
      answer = { data: await gql(doc, JSON.parse(key) as V) };
    } catch (e) {
      answer = { error: e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL') };
    }
    if (!order.current.settle(n)) return;
    if ('data' in answer) setDataState(answer.data);
    setError('error' in answer ? answer.error : null);
    setLoading(false);
  };
  // the variables of this render: a run queued behind one of older variables fetches these
  const latestFetch = useRef(fetchOnce);
  latestFetch.current = fetchOnce;
  const queue = useRef<(() => Promise<void>) | null>(null);
  queue.current ??= coalesced(() => latestFetch.current());
  // a new identity when the variables change, which runs the effect below
  const refetch = useCallback(() => queue.current!(), [doc, key]);
  const first = useRef(initial !== null);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    order.current.updated(); // an answer for the old variables, still in flight, is not shown
    void refetch();
  }, [refetch]);
  const latestRefetch = useRef(refetch);
  latestRefetch.current = refetch;
  const setData = useCallback((update: (d: R) => R) => {
    setDataState((d) => (d === null ? d : update(d)));
    if (order.current.updated()) void latestRefetch.current();
  }, []);
  return { data, error, loading, refetch, setData };
}

let wsClient: Client | null = null;
let wsConnected = false;

/** One graphql-ws connection per page; each (re)connection asks the console for a fresh short-lived token. */
function subscriptions(): Client {
  if (wsClient) return wsClient;
  let token = '';
  wsClient = createClient({
    url: async () => {
      const res = await fetch('/api/ws-token', { method: 'POST' });
      if (!res.ok) throw new Error(`no subscription token (${res.status})`);
      const t = (await res.json()) as { url: string; token: string };
      token = t.token;
      return t.url;
    },
    connectionParams: () => ({ authorization: `Bearer ${token}` }),
    lazy: true,
    retryAttempts: Infinity,
    shouldRetry: () => true,
  });
  wsClient.on('connected', () => (wsConnected = true));
  wsClient.on('closed', () => (wsConnected = false));
  return wsClient;
}

export type LiveState = 'connecting' | 'live' | 'error';

/**
 * Calls `onData` for each item of a subscription while mounted; reports whether it is live.
 * `resync` (the page's refetch) runs each time the connection is made while mounted: events sent
 * while it was down, or before it first came up, were never seen.
 */
export function useSubscription<R, V>(doc: TypedDocumentString<R, V>, variables: V, onData: (d: R) => void, resync?: () => Promise<void>): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onData);
  handler.current = onData;
  const again = useRef(resync);
  again.current = resync;
  const key = JSON.stringify(variables);
  useEffect(() => {
    const client = subscriptions();
    if (wsConnected) setState('live');
    const offConnected = client.on('connected', () => {
      setState('live');
      void again.current?.();
    });
    const offClosed = client.on('closed', () => setState('connecting'));
    const dispose = client.subscribe<R>(
      { query: doc.toString(), variables: JSON.parse(key) as Record<string, unknown> },
      {
        next: (v) => {
          setState('live');
          if (v.data) handler.current(v.data as R);
        },
        error: () => setState('error'),
        complete: () => undefined,
      },
    );
    return () => {
      dispose();
      offConnected();
      offClosed();
    };
  }, [doc, key]);
  return state;
}
