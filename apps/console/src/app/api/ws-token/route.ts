import { NextResponse, type NextRequest } from 'next/server';
import { SubscriptionTokenDoc } from '@/graphql/operations';
import { GATEWAY_WS_URL, TOKEN_COOKIE } from '@/lib/config';
import { GatewayError, gatewayRequest } from '@/lib/gateway';

/** A token of a few minutes for the page's graphql-ws connection, so the login token stays HttpOnly. */
export async function POST(req: NextRequest): Promise<NextResponse> {
  const token = req.cookies.get(TOKEN_COOKIE)?.value;
  if (!token) return NextResponse.json({ error: 'Sign in first.' }, { status: 401 });
  try {
    const { issueSubscriptionToken } = await gatewayRequest(SubscriptionTokenDoc, {}, token);
    return NextResponse.json({ url: GATEWAY_WS_URL, token: issueSubscriptionToken.token, expiresAt: issueSubscriptionToken.expiresAt }, { headers: { 'cache-control': 'no-store' } });
  } catch (e) {
    const code = e instanceof GatewayError ? e.code : 'INTERNAL';
    return NextResponse.json({ error: (e as Error).message, code }, { status: code === 'UNAUTHENTICATED' ? 401 : 502 });
  }
}
