'use client';
import dynamic from 'next/dynamic';
import { Loader } from '@mantine/core';
import type { CatalogQuery } from '@/gql/graphql';

// the SDK's browser part (WebSocket, WebCodecs, canvas) only runs in the browser
const Player = dynamic(() => import('./Player').then((m) => m.Player), { ssr: false, loading: () => <Loader aria-label="Loading the player" /> });

export function PlayerLoader({ ua }: { ua: CatalogQuery['uas'][number] }) {
  return <Player ua={ua} />;
}
