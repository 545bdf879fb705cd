// The console server's configuration, read from the environment (documented in docs/console.md).
export const GATEWAY_URL = (process.env.UVE_GATEWAY_URL ?? 'http://127.0.0.1:4000').replace(/\/+$/, '');
export const GATEWAY_GRAPHQL_URL = `${GATEWAY_URL}/graphql`;
/** graphql-ws endpoint the browser opens (the gateway serves it on the same path). */
export const GATEWAY_WS_URL = GATEWAY_GRAPHQL_URL.replace(/^http/, 'ws');
/** HttpOnly cookie holding the gateway login token. */
export const TOKEN_COOKIE = 'uve_token';
