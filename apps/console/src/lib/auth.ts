// Who is signed in, read on the server from the HttpOnly cookie; pages check the role here, before
// any data is fetched or rendered.
import { cache } from 'react';
import { cookies } from 'next/headers';
import { redirect } from 'next/navigation';
import { MeDoc } from '@/graphql/operations';
import type { MeQuery, TypedDocumentString } from '@/gql/graphql';
import { TOKEN_COOKIE } from './config';
import { gatewayRequest } from './gateway';

export type Me = NonNullable<MeQuery['me']>;

export async function token(): Promise<string | undefined> {
  return (await cookies()).get(TOKEN_COOKIE)?.value;
}

/** The signed-in user (role read fresh from the gateway), or null: once per request. */
export const currentUser = cache(async (): Promise<Me | null> => {
  const t = await token();
  if (!t) return null;
  try {
    return (await gatewayRequest(MeDoc, {}, t)).me ?? null;
  } catch {
    return null;
  }
});

export async function requireUser(): Promise<Me> {
  const me = await currentUser();
  if (!me) redirect('/login');
  return me;
}

/** Admin pages: a USER is sent to the web client, never shown admin data. */
export async function requireAdmin(): Promise<Me> {
  const me = await requireUser();
  if (me.role !== 'ADMIN') redirect('/play?denied=admin');
  return me;
}

/** Secure cookies everywhere but on loopback (http://localhost during development and tests). */
export function secureCookie(url: string): boolean {
  const host = new URL(url).hostname;
  return !['localhost', '127.0.0.1', '[::1]', '::1'].includes(host);
}

/** Data for an admin page, fetched on the server only after the role was checked. */
export async function adminData<R, V>(doc: TypedDocumentString<R, V>, variables: V): Promise<R> {
  await requireAdmin();
  return gatewayRequest(doc, variables, await token());
}

/** Data for a signed-in user's page. */
export async function userData<R, V>(doc: TypedDocumentString<R, V>, variables: V): Promise<R> {
  await requireUser();
  return gatewayRequest(doc, variables, await token());
}
