// Server side: GraphQL requests to the gateway with the signed-in user's token.
import type { TypedDocumentString } from '@/gql/graphql';
import { GATEWAY_GRAPHQL_URL } from './config';

export interface GqlErrorBody {
  message: string;
  extensions?: { code?: string };
}

export class GatewayError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** Sends a raw GraphQL body; returns the gateway's status and JSON (or a 502 body saying it is unreachable). */
export async function forwardToGateway(body: string, token: string | undefined): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const res = await fetch(GATEWAY_GRAPHQL_URL, { method: 'POST', headers, body, cache: 'no-store' });
    return { status: res.status, json: await res.json() };
  } catch (e) {
    return { status: 502, json: { errors: [{ message: `The gateway at ${GATEWAY_GRAPHQL_URL} does not answer (${(e as Error).message}).`, extensions: { code: 'UNAVAILABLE' } }] } };
  }
}

/** One typed operation; a GraphQL error becomes a GatewayError with the gateway's code. */
export async function gatewayRequest<R, V>(doc: TypedDocumentString<R, V>, variables: V, token?: string): Promise<R> {
  const { json } = await forwardToGateway(JSON.stringify({ query: doc.toString(), variables }), token);
  const body = json as { data?: R | null; errors?: GqlErrorBody[] };
  const err = body.errors?.[0];
  if (err) throw new GatewayError(err.message, err.extensions?.code ?? 'INTERNAL');
  if (!body.data) throw new GatewayError('The gateway sent no data.', 'INTERNAL');
  return body.data;
}
