// The UC SDK's UVE-1 helpers: GraphQL over fetch, errors carry extensions.code.
import { GatewayClient, GatewayError } from '../../packages/client/src/gateway-client';

type Call = { url: string; headers: Record<string, string>; body: { query: string; variables: Record<string, unknown> } };

function fakeFetch(answer: (c: Call) => unknown, status = 200) {
  const calls: Call[] = [];
  const fn = (async (url: string, init: RequestInit) => {
    const c = { url, headers: init.headers as Record<string, string>, body: JSON.parse(String(init.body)) };
    calls.push(c);
    return new Response(JSON.stringify(answer(c)), { status, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof fetch;
  return { fn, calls };
}

describe('GatewayClient', () => {
  it('logs in, then sends the bearer token; requestApplication returns the connection', async () => {
    const { fn, calls } = fakeFetch((c) =>
      c.body.query.includes('login')
        ? { data: { login: { token: 'T', expiresAt: 'x', user: { id: 'u', username: 'ann', displayName: null, role: 'USER' } } } }
        : { data: { requestApplication: { id: 's', state: 'ASSIGNED', connection: { vmId: 'vm', url: 'ws://h:1/uve3', token: 'st', expiresAt: 'y' } } } },
    );
    const gw = new GatewayClient('http://gw:4000/', { fetch: fn });
    await gw.login('ann', 'pw');
    const s = await gw.requestApplication({ uaId: 'ua', terminal: { screenWidth: 800, screenHeight: 600, codecs: ['H264'], localResources: [] } });
    expect(calls[0].url).toBe('http://gw:4000/graphql');
    expect(calls[0].body.variables).toEqual({ u: 'ann', p: 'pw' });
    expect(calls[1].headers.authorization).toBe('Bearer T');
    expect(calls[1].body.variables).toEqual({ input: { uaId: 'ua', terminal: { screenWidth: 800, screenHeight: 600, codecs: ['H264'], localResources: [] }, reconnectionMethod: 'NORMAL' } });
    expect(s.connection).toEqual({ vmId: 'vm', url: 'ws://h:1/uve3', token: 'st', expiresAt: 'y' });
  });

  it('asks for a fresh start only when told to', async () => {
    const { fn, calls } = fakeFetch(() => ({ data: { requestApplication: { id: 's', state: 'ASSIGNED', connection: null } } }));
    const gw = new GatewayClient('http://gw', { fetch: fn, token: 't' });
    const terminal = { screenWidth: 800, screenHeight: 600, codecs: ['MJPEG' as const], localResources: [] };
    await gw.requestApplication({ uaId: 'ua', terminal, fresh: true });
    await gw.requestApplication({ uaId: 'ua', terminal });
    expect(calls[0].body.variables).toEqual({ input: { uaId: 'ua', terminal, reconnectionMethod: 'NORMAL', fresh: true } });
    expect(calls[1].body.variables.input).not.toHaveProperty('fresh');
  });

  it('surfaces the GraphQL error code and message', async () => {
    const { fn } = fakeFetch(() => ({ errors: [{ message: 'no VM has capacity for this UA now', extensions: { code: 'UNAVAILABLE' } }], data: null }));
    const err = await new GatewayClient('http://gw', { fetch: fn, token: 't' }).uas().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: 'UNAVAILABLE: no VM has capacity for this UA now' });
  });

  it('reports an unreachable gateway or a non-GraphQL answer as UNAVAILABLE', async () => {
    const down = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof fetch;
    await expect(new GatewayClient('http://gw', { fetch: down }).uas()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/unreachable/) });
    const html = (async () => new Response('<html>', { status: 502 })) as unknown as typeof fetch;
    await expect(new GatewayClient('http://gw', { fetch: html }).uas()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 502/) });
  });
});
