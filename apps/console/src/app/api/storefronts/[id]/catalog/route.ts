import { NextResponse, type NextRequest } from 'next/server';
import { StorefrontDoc } from '@/graphql/operations';
import { TOKEN_COOKIE } from '@/lib/config';
import { GatewayError, gatewayRequest } from '@/lib/gateway';

/**
 * A registered storefront's catalog (its GET /catalog), fetched by the console's server: the page
 * cannot reach the storefront itself (another origin), and only an admin may see storefronts at all.
 */
export async function GET(req: NextRequest, { params }: { params: Promise<{ id: string }> }): Promise<NextResponse> {
  const token = req.cookies.get(TOKEN_COOKIE)?.value;
  if (!token) return NextResponse.json({ error: 'Sign in first.' }, { status: 401 });
  const { id } = await params;
  let baseUrl: string;
  try {
    const s = (await gatewayRequest(StorefrontDoc, {}, token)).storefronts.find((x) => x.id === id);
    if (!s) return NextResponse.json({ error: 'No such storefront.' }, { status: 404 });
    baseUrl = s.baseUrl;
  } catch (e) {
    const code = e instanceof GatewayError ? e.code : 'INTERNAL';
    return NextResponse.json({ error: (e as Error).message, code }, { status: code === 'UNAUTHENTICATED' ? 401 : code === 'FORBIDDEN' ? 403 : 502 });
  }
  try {
    const res = await fetch(new URL('catalog', baseUrl), { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return NextResponse.json({ error: `The storefront answered ${res.status} for its catalog.` }, { status: 502 });
    const body = (await res.json()) as { packages?: unknown };
    if (!Array.isArray(body.packages)) return NextResponse.json({ error: 'The storefront sent no catalog (no "packages" list).' }, { status: 502 });
    return NextResponse.json({ packages: body.packages }, { headers: { 'cache-control': 'no-store' } });
  } catch (e) {
    return NextResponse.json({ error: `The storefront at ${baseUrl} does not answer (${(e as Error).message}).` }, { status: 502 });
  }
}
