import { NextResponse, type NextRequest } from 'next/server';
import { TOKEN_COOKIE } from '@/lib/config';
import { secureCookie } from '@/lib/auth';

/** Clears the login cookie and goes back to the login page. */
export function POST(req: NextRequest): NextResponse {
  const res = NextResponse.redirect(new URL('/login', req.url), 303);
  res.cookies.set(TOKEN_COOKIE, '', { httpOnly: true, sameSite: 'lax', secure: secureCookie(req.url), path: '/', maxAge: 0 });
  return res;
}
