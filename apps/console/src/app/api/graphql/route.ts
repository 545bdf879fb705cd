import { NextResponse, type NextRequest } from 'next/server';
import { TOKEN_COOKIE } from '@/lib/config';
import { forwardToGateway } from '@/lib/gateway';

/**
 * The browser's queries and mutations go to the gateway through here, with the token from the
 * HttpOnly cookie; the gateway decides what the user may see and do.
 */
export async function POST(req: NextRequest): Promise<NextResponse> {
  const token = req.cookies.get(TOKEN_COOKIE)?.value;
  if (!token) return NextResponse.json({ errors: [{ message: 'Sign in first.', extensions: { code: 'UNAUTHENTICATED' } }] }, { status: 401 });
  // JSON only: a cross-site form cannot send it without CORS, on top of the SameSite cookie
  if (!req.headers.get('content-type')?.startsWith('application/json')) {
    return NextResponse.json({ errors: [{ message: 'Send GraphQL as application/json.', extensions: { code: 'BAD_USER_INPUT' } }] }, { status: 415 });
  }
  const body = await req.text();
  if (body.length > 256 * 1024) return NextResponse.json({ errors: [{ message: 'Request too large.', extensions: { code: 'BAD_USER_INPUT' } }] }, { status: 413 });
  const { status, json } = await forwardToGateway(body, token);
  return NextResponse.json(json, { status, headers: { 'cache-control': 'no-store' } });
}
