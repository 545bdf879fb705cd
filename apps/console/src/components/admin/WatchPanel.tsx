'use client';
// Watch a user's session view-only: the gateway gives an admin a VIEWER token in the admin's own name
// (session(id) { connection }), a watcher one with each monitoring (requestMonitoring), and the SDK's
// StreamClient draws that stream with no input captured.
import { useEffect, useRef, useState } from 'react';
import { Alert, Badge, Box, Button, Card, Group, Text } from '@mantine/core';
import { StreamClient, attachCanvas, type CanvasView } from '@uve/client';
import { SessionConnectionDoc } from '@/graphql/operations';
import { gql } from '@/lib/client';

type Phase = 'off' | 'connecting' | 'watching' | 'ended' | 'failed';

export interface StreamTarget {
  url: string;
  token: string;
}

/** A fresh view-only connection to a session, in the caller's own name (admins). */
export function sessionConnection(sessionId: string): () => Promise<StreamTarget> {
  return async () => {
    const { session } = await gql(SessionConnectionDoc, { id: sessionId });
    if (!session?.connection) throw new Error('The session has no stream to watch (not started yet, or over).');
    return { url: session.connection.url, token: session.connection.token };
  };
}

/** `connect` gives a fresh connection each time (the first one and every reconnection). */
export function WatchPanel({ connect: connectionOf, over, label = "The user's picture, view only" }: { connect: () => Promise<StreamTarget>; over: boolean; label?: string }) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const live = useRef<{ client: StreamClient; view: CanvasView } | null>(null);
  const [phase, setPhase] = useState<Phase>('off');
  const [error, setError] = useState<string | null>(null);

  const stop = () => {
    const l = live.current;
    live.current = null;
    if (!l) return;
    l.view.detach();
    l.client.close();
  };
  useEffect(() => stop, []);
  // the session ended: nothing more to watch
  useEffect(() => {
    if (over && live.current) {
      stop();
      setPhase('ended');
    }
  }, [over]);

  const watch = async () => {
    const canvas = canvasRef.current!;
    setError(null);
    setPhase('connecting');
    try {
      const target = await connectionOf();
      const client = new StreamClient({ reconnect: connectionOf });
      client.on('welcome', () => setPhase('watching'));
      client.on('ended', () => setPhase('ended'));
      client.on('close', (e) => {
        if (!e.reconnecting && live.current?.client === client) setPhase(e.code === 1000 ? 'ended' : 'failed');
      });
      let draws = 0;
      const view = attachCanvas(client, canvas, {
        onDraw: () => {
          canvas.dataset.draws = String(++draws);
        },
        onError: (e) => setError(e.message),
      });
      live.current = { client, view };
      await client.connect(target);
      setPhase('watching');
    } catch (e) {
      stop();
      setError((e as Error).message);
      setPhase('failed');
    }
  };

  const watching = phase === 'connecting' || phase === 'watching';
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm">
        <Text fw={600} component="h2" size="md">Watch (view only)</Text>
        <Group gap="sm">
          <Badge data-testid="watch-phase" data-phase={phase} color={phase === 'watching' ? 'green' : phase === 'failed' ? 'red' : 'gray'}>{phase}</Badge>
          {watching ? (
            <Button variant="default" onClick={() => { stop(); setPhase('off'); }}>Stop watching</Button>
          ) : (
            <Button onClick={() => void watch()} disabled={over}>Watch</Button>
          )}
        </Group>
      </Group>
      {error && <Alert color="red" role="alert" title="The stream could not be watched" mb="sm">{error}</Alert>}
      <Box bg="black" style={{ borderRadius: 8, overflow: 'hidden', aspectRatio: '4 / 3', maxWidth: 640 }}>
        <canvas
          ref={canvasRef}
          data-testid="watch-canvas"
          role="img"
          aria-label={label}
          style={{ width: '100%', height: '100%', objectFit: 'contain', display: 'block' }}
        />
      </Box>
    </Card>
  );
}
