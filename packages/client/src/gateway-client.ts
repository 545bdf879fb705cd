// Minimal UVE-1 helpers: the GraphQL calls a UC needs to log in and get a UA session (see
// docs/api/uve.graphql). Plain fetch, so it runs in browsers and Node 20 alike.
import type { LocalResourceKind, Platform, ReconnectionMethod, StreamParams, TerminalCapabilities } from '@uve/protocol';

export const GRAPHQL_PATH = '/graphql';

/** A GraphQL error from the gateway; `code` is its extensions.code (UNAUTHENTICATED, FORBIDDEN, ...). */
export class GatewayError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly errors: Array<{ message: string; extensions?: { code?: string } }> = [],
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

export interface UserInfo {
  id: string;
  username: string;
  displayName: string | null;
  role: string;
}

export interface AuthPayload {
  token: string;
  expiresAt: string;
  user: UserInfo;
}

export interface UaInfo {
  id: string;
  name: string;
  platform: Platform;
  currentVersion: string;
  requiredResources: LocalResourceKind[];
  minScreenWidth: number | null;
  minScreenHeight: number | null;
}

export interface SessionConnection {
  vmId: string;
  url: string;
  token: string;
  expiresAt: string;
}

export interface SessionInfo {
  id: string;
  state: string;
  uaVersion: string;
  reconnectionMethod: ReconnectionMethod;
  ua: { id: string; name: string };
  vm: { id: string; endpoint: string | null } | null;
  connection: SessionConnection | null;
  /** the Output Stream negotiated (null until a VM is assigned): known before connecting */
  stream: StreamParams | null;
}

export interface RequestApplicationInput {
  uaId: string;
  terminal: TerminalCapabilities;
  reconnectionMethod?: ReconnectionMethod;
  /** start the UA afresh: the user's DISCONNECTED session of this UA and its VM Data are not resumed */
  fresh?: boolean;
  /**
   * after a drop: the session this terminal was in. If the VMM has not heard of the drop yet, it
   * goes on where it runs (the new connection replaces the old one) instead of a second session
   */
  sessionId?: string;
}

export interface GatewayClientOptions {
  /** bearer token from an earlier login */
  token?: string;
  /** GraphQL path on the gateway (default /graphql) */
  path?: string;
  fetch?: typeof fetch;
}

const USER = 'id username displayName role';
const SESSION = `id state uaVersion reconnectionMethod ua { id name } vm { id endpoint } connection { vmId url token expiresAt } stream { codec width height maxFps bitrateKbps }`;
const UA = 'id name platform currentVersion requiredResources minScreenWidth minScreenHeight';

export class GatewayClient {
  token: string | null;
  private readonly endpoint: string;
  private readonly fetchFn: typeof fetch;

  constructor(baseUrl: string, options: GatewayClientOptions = {}) {
    this.endpoint = baseUrl.replace(/\/+$/, '') + (options.path ?? GRAPHQL_PATH);
    this.token = options.token ?? null;
    this.fetchFn = options.fetch ?? ((...a) => fetch(...a));
  }

  /** Runs one operation; throws GatewayError carrying the first error's extensions.code. */
  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await this.fetchFn(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
    } catch (e) {
      throw new GatewayError(`gateway unreachable at ${this.endpoint}: ${(e as Error).message}`, 'UNAVAILABLE');
    }
    let body: { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new GatewayError(`gateway answered HTTP ${res.status} without a GraphQL response`, res.status === 401 ? 'UNAUTHENTICATED' : 'UNAVAILABLE');
    }
    if (body.errors?.length) {
      const first = body.errors[0];
      const code = first.extensions?.code ?? 'INTERNAL_SERVER_ERROR';
      throw new GatewayError(`${code}: ${first.message}`, code, body.errors);
    }
    if (!body.data) throw new GatewayError(`gateway answered HTTP ${res.status} with no data`, 'UNAVAILABLE');
    return body.data;
  }

  async login(username: string, password: string): Promise<AuthPayload> {
    const d = await this.request<{ login: AuthPayload }>(
      `mutation Login($u: String!, $p: String!) { login(username: $u, password: $p) { token expiresAt user { ${USER} } } }`,
      { u: username, p: password },
    );
    this.token = d.login.token;
    return d.login;
  }

  async register(input: { username: string; password: string; displayName?: string }): Promise<AuthPayload> {
    const d = await this.request<{ register: AuthPayload }>(
      `mutation Register($input: RegisterInput!) { register(input: $input) { token expiresAt user { ${USER} } } }`,
      { input },
    );
    this.token = d.register.token;
    return d.register;
  }

  /** UVE-1 UA request: the VMM selects a VM; the session's connection says where to connect. */
  async requestApplication(input: RequestApplicationInput): Promise<SessionInfo> {
    const d = await this.request<{ requestApplication: SessionInfo }>(
      `mutation RequestApplication($input: RequestApplicationInput!) { requestApplication(input: $input) { ${SESSION} } }`,
      { input: { uaId: input.uaId, terminal: input.terminal, reconnectionMethod: input.reconnectionMethod ?? 'NORMAL', ...(input.fresh ? { fresh: true } : {}), ...(input.sessionId ? { sessionId: input.sessionId } : {}) } },
    );
    return d.requestApplication;
  }

  async endSession(sessionId: string): Promise<SessionInfo> {
    const d = await this.request<{ endSession: SessionInfo }>(`mutation EndSession($id: ID!) { endSession(sessionId: $id) { ${SESSION} } }`, { id: sessionId });
    return d.endSession;
  }

  async uas(platform?: Platform): Promise<UaInfo[]> {
    const d = await this.request<{ uas: UaInfo[] }>(`query Uas($platform: Platform) { uas(platform: $platform) { ${UA} } }`, { platform: platform ?? null });
    return d.uas;
  }
}
