// Session-token checks of the VM agent (UVE-3 hello), against a JWKS served like the gateway's.
import { CLOSE, type SessionTokenClaims } from '@uve/protocol';
import { AuthError, TokenReplayGuard, createTokenVerifier } from '../../apps/vm-agent/src/stream/auth';
import { freePort, startJwks, type JwksHandle } from '../support/agent-harness';

let jwks: JwksHandle;
beforeAll(async () => {
  jwks = await startJwks();
});
afterAll(() => jwks.stop());

const claims: SessionTokenClaims = { sub: 'u1', sid: 's1', vm: 'vm-a', ua: 'ua-1', role: 'PLAYER' };
const verifier = () => createTokenVerifier(`${jwks.url}/.well-known/jwks.json`, 'vm-a');

async function refusal(p: Promise<unknown>): Promise<AuthError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(AuthError);
  return e as AuthError;
}

describe('session token verification', () => {
  it('accepts a token of the VMM for this VM and returns its claims', async () => {
    await expect(verifier().verify(await jwks.mint(claims, { jti: 'j-1' }))).resolves.toEqual({ ...claims, jti: 'j-1', exp: expect.any(Number), iat: expect.any(Number) });
  });

  it('refuses a token without an id (it could be replayed unnoticed)', async () => {
    expect(await refusal(verifier().verify(await jwks.mint(claims, { jti: null })))).toMatchObject({ code: CLOSE.UNAUTHORIZED, message: 'session token has no jti claim' });
  });

  it('remembers a used token until it expires, then forgets it', () => {
    const guard = new TokenReplayGuard();
    const now = 1_000_000_000_000;
    guard.use({ jti: 'a', exp: now / 1000 + 60 }, now);
    let e: unknown = null;
    try {
      guard.use({ jti: 'a', exp: now / 1000 + 60 }, now + 1000);
    } catch (x) {
      e = x;
    }
    expect(e).toMatchObject({ code: CLOSE.UNAUTHORIZED, message: expect.stringMatching(/already used/) });
    guard.use({ jti: 'b', exp: now / 1000 + 60 }, now + 1000);
    expect(guard.size).toBe(2);
    // past their expiry both are swept (a replay of them fails the signature check's exp anyway)
    guard.use({ jti: 'c', exp: now / 1000 + 200 }, now + 120_000);
    expect(guard.size).toBe(1);
  });

  it('refuses with 4401 and a reason: foreign key, other VM, expired, wrong audience, bad role, garbage', async () => {
    const v = verifier();
    expect(await refusal(v.verify(await jwks.mint(claims, { key: jwks.foreignKey })))).toMatchObject({ code: CLOSE.UNAUTHORIZED, message: expect.stringMatching(/invalid session token/) });
    expect(await refusal(v.verify(await jwks.mint({ ...claims, vm: 'vm-b' })))).toMatchObject({ code: CLOSE.UNAUTHORIZED, message: 'session token is for VM vm-b, not this VM' });
    expect(await refusal(v.verify(await jwks.mint(claims, { expiresIn: '-1s' })))).toMatchObject({ code: CLOSE.UNAUTHORIZED, message: expect.stringMatching(/exp/) });
    expect(await refusal(v.verify(await jwks.mint(claims, { audience: 'other' })))).toMatchObject({ code: CLOSE.UNAUTHORIZED });
    expect(await refusal(v.verify(await jwks.mint({ ...claims, role: 'ADMIN' as 'PLAYER' })))).toMatchObject({ message: expect.stringMatching(/role must be one of PLAYER, VIEWER/) });
    expect(await refusal(v.verify('a.b.c'))).toMatchObject({ code: CLOSE.UNAUTHORIZED });
  });

  it('answers 1011 (try again) when the keys cannot be fetched', async () => {
    const port = await freePort();
    const v = createTokenVerifier(`http://127.0.0.1:${port}/.well-known/jwks.json`, 'vm-a');
    expect(await refusal(v.verify(await jwks.mint(claims)))).toMatchObject({ code: CLOSE.INTERNAL, message: expect.stringMatching(/cannot verify the session token now/) });
  });
});
