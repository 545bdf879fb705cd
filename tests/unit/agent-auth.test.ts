// Session-token checks of the VM agent (UVE-3 hello), against a JWKS served like the gateway's.
import { CLOSE, type SessionTokenClaims } from '@uve/protocol';
import { AuthError, createTokenVerifier } from '../../apps/vm-agent/src/stream/auth';
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
    await expect(verifier().verify(await jwks.mint(claims))).resolves.toEqual(claims);
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
