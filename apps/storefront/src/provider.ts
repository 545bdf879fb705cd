// The storefront's side of UVE-7: provideApplication on the VMM's GraphQL API, authenticated with
// the API key an admin got from registerStorefront (`Authorization: ApiKey <key>`).
import type { CatalogEntry } from './storefront';

export interface ProvidedProcurement {
  id: string;
  status: string;
  error: string | null;
  ua: { id: string; name: string } | null;
}

export class ProvideError extends Error {
  constructor(message: string, readonly code: string | null) {
    super(message);
    this.name = 'ProvideError';
  }
}

const PROVIDE = `mutation($i: ProvideApplicationInput!) { provideApplication(input: $i) { id status error ua { id name } } }`;

/** Asks the VMM at `gatewayUrl` to procure one catalog entry, downloadable at `packageUrl`. */
export async function provideApplication(gatewayUrl: string, apiKey: string, entry: CatalogEntry, packageUrl: string): Promise<ProvidedProcurement> {
  const input = {
    storefrontAppId: entry.storefrontAppId,
    name: entry.name,
    version: entry.version,
    platform: entry.platform,
    packageUrl,
    sha256: entry.sha256,
    sizeBytes: entry.sizeBytes,
    requiredResources: entry.requiredResources,
    minScreenWidth: entry.minScreenWidth ?? null,
    minScreenHeight: entry.minScreenHeight ?? null,
  };
  const res = await fetch(new URL('/graphql', gatewayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `ApiKey ${apiKey}` },
    body: JSON.stringify({ query: PROVIDE, variables: { i: input } }),
  });
  const body = (await res.json()) as { data?: { provideApplication?: ProvidedProcurement } | null; errors?: { message: string; extensions?: { code?: string } }[] };
  const err = body.errors?.[0];
  if (err || !body.data?.provideApplication) throw new ProvideError(err?.message ?? `HTTP ${res.status}`, err?.extensions?.code ?? null);
  return body.data.provideApplication;
}
