import { NextResponse, type NextRequest } from 'next/server';
import { LoginDoc } from '@/graphql/operations';
import { TOKEN_COOKIE } from '@/lib/config';
import { GatewayError, gatewayRequest } from '@/lib/gateway';
import { secureCookie } from '@/lib/auth';

/** Logs in at the gateway and keeps its token in an HttpOnly cookie; the browser never sees it. */
export async function POST(req: NextRequest): Promise<NextResponse> {
  const body = (await req.json().catch(() => null)) as { username?: unknown; password?: unknown } | null;
  if (typeof body?.username !== 'string' || typeof body.password !== 'string') {
    return NextResponse.json({ error: 'Enter a username and a password.' }, { status: 400 });
  }
  try {
    const { login } = await gatewayRequest(LoginDoc, { username: body.username, password: body.password });
    const res = NextResponse.json({ user: login.user });
    res.cookies.set(TOKEN_COOKIE, login.token, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookie(req.url),
      path: '/',
      expires: new Date(login.expiresAt),
    });
    return res;
  } catch (e) {
    const code = e instanceof GatewayError ? e.code : 'INTERNAL';
    return NextResponse.json({ error: (e as Error).message, code }, { status: code === 'UNAUTHENTICATED' ? 401 : 502 });
  }
}
