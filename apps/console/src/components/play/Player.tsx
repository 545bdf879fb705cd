'use client';
// The reference web client: requestApplication, then the SDK's StreamClient draws the stream into a
// canvas (WebCodecs: VideoDecoder for H264, ImageDecoder for MJPEG; the newest picture only) and
// captureInput sends mouse, touch and keys.
import { useEffect, useRef, useState } from 'react';
import { Alert, Badge, Box, Button, Group, Select, Stack, Switch, Text, Title } from '@mantine/core';
import { StreamClient, attachCanvas, captureInput, prepareCanvas, type CanvasView } from '@uve/client';
import { EndSessionDoc, RequestApplicationDoc } from '@/graphql/operations';
import type { CatalogQuery, ReconnectionMethod, VideoCodec } from '@/gql/graphql';
import { gql } from '@/lib/client';

type Phase = 'idle' | 'requesting' | 'connecting' | 'playing' | 'reconnecting' | 'ended' | 'failed';

interface Stats {
  codec: string;
  width: number;
  height: number;
  draws: number;
  latencyMs: number;
}

export function Player({ ua }: { ua: CatalogQuery['uas'][number] }) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const live = useRef<{ client: StreamClient; view: CanvasView; stopInput: () => void; sessionId: string } | null>(null);
  const [phase, setPhase] = useState<Phase>('idle');
  const [error, setError] = useState<string | null>(null);
  const [method, setMethod] = useState<ReconnectionMethod>('NORMAL');
  const [showStats, setShowStats] = useState(false);
  const [stats, setStats] = useState<Stats | null>(null);
  const [sessionId, setSessionId] = useState<string | null>(null);

  const teardown = () => {
    const l = live.current;
    live.current = null;
    if (!l) return;
    l.stopInput();
    l.view.detach();
    l.client.close();
  };
  useEffect(() => teardown, []);

  /** the terminal: this page's room for the picture, at least what the UA needs */
  const screenSize = (canvas: HTMLCanvasElement) => {
    const box = canvas.parentElement!.getBoundingClientRect();
    const width = Math.max(ua.minScreenWidth ?? 0, Math.min(1280, Math.round(box.width) || 640));
    return { width, height: Math.max(ua.minScreenHeight ?? 0, Math.min(720, Math.round((width * 3) / 4))) };
  };
  // the canvas made ready for that size while the user looks at the page, so that the first
  // picture is drawn as soon as it is decoded (see prepareCanvas)
  useEffect(() => {
    const canvas = canvasRef.current;
    if (!canvas) return;
    const { width, height } = screenSize(canvas);
    void prepareCanvas(canvas, width, height);
  }, [ua.id]);

  const start = async () => {
    const canvas = canvasRef.current!;
    setError(null);
    setPhase('requesting');
    const codecs: VideoCodec[] = typeof VideoDecoder !== 'undefined' ? ['H264', 'MJPEG'] : ['MJPEG'];
    const { width, height } = screenSize(canvas);
    try {
      const terminal = { screenWidth: width, screenHeight: height, codecs, localResources: [], touch: 'ontouchstart' in window, pixelRatio: window.devicePixelRatio, platform: navigator.platform };
      const { requestApplication: s } = await gql(RequestApplicationDoc, { input: { uaId: ua.id, reconnectionMethod: method, terminal } });
      if (!s.connection) throw new Error('The gateway gave no connection for the session.');
      setSessionId(s.id);
      let current = s.id;
      const client = new StreamClient({
        // seed B.1: the UA asked for again, naming the session: it continues where the VMM places
        // it (its VM, or another one with its VM Data when that VM is gone), not only on its old VM
        reconnect: async () => {
          const { requestApplication: again } = await gql(RequestApplicationDoc, { input: { uaId: ua.id, reconnectionMethod: method, terminal, sessionId: current } });
          if (!again.connection) throw new Error(`the session is ${again.state} and has no connection`);
          current = again.id;
          setSessionId(again.id);
          if (live.current?.client === client) live.current.sessionId = again.id;
          return { url: again.connection.url, token: again.connection.token };
        },
      });
      client.on('codec', (c) => setStats((st) => ({ codec: c.codec, width: c.width, height: c.height, draws: st?.draws ?? 0, latencyMs: st?.latencyMs ?? 0 })));
      client.on('reconnecting', () => setPhase('reconnecting'));
      client.on('welcome', () => setPhase('playing'));
      client.on('ended', (e) => {
        setError(e.reason ? `The session ended: ${e.reason}` : null);
        setPhase('ended');
      });
      client.on('close', (e) => {
        if (!e.reconnecting && live.current?.client === client) setPhase(e.code === 1000 ? 'ended' : 'failed');
      });
      let draws = 0;
      const view = attachCanvas(client, canvas, {
        onDraw: (_h, latencyMs) => {
          draws++;
          if (draws % 10 === 1) setStats((st) => (st ? { ...st, draws, latencyMs } : st));
          canvas.dataset.draws = String(draws);
        },
        onError: (e) => setError(e.message),
      });
      const stopInput = captureInput(client, canvas);
      live.current = { client, view, stopInput, sessionId: s.id };
      setPhase('connecting');
      await client.connect({ url: s.connection.url, token: s.connection.token });
      setPhase('playing');
      canvas.focus();
    } catch (e) {
      teardown();
      setError((e as Error).message);
      setPhase('failed');
    }
  };

  const end = async () => {
    const l = live.current;
    const id = l?.sessionId ?? sessionId;
    if (l) await l.client.bye().catch(() => undefined);
    teardown();
    setPhase('ended');
    if (id) await gql(EndSessionDoc, { sessionId: id }).catch((e: Error) => setError(e.message));
  };

  const playing = phase === 'connecting' || phase === 'playing' || phase === 'reconnecting';
  return (
    <Stack gap="sm">
      <Group justify="space-between" wrap="wrap">
        <Title order={1} size="h3">{ua.name}</Title>
        <Group gap="sm">
          <Badge data-testid="player-phase" data-phase={phase} color={phase === 'playing' ? 'green' : phase === 'failed' ? 'red' : phase === 'reconnecting' ? 'orange' : 'gray'}>{phase}</Badge>
          {!playing ? (
            <>
              <Select aria-label="Reconnection method" data={[{ value: 'NORMAL', label: 'Normal reconnection' }, { value: 'NO_LOSS', label: 'No-loss reconnection' }]} value={method} onChange={(v) => v && setMethod(v as ReconnectionMethod)} allowDeselect={false} w={210} size="sm" />
              <Button onClick={() => void start()} loading={phase === 'requesting'}>Start</Button>
            </>
          ) : (
            <Button color="red" onClick={() => void end()}>End session</Button>
          )}
          <Switch label="Stats" checked={showStats} onChange={(e) => setShowStats(e.currentTarget.checked)} />
        </Group>
      </Group>
      {error && <Alert color="red" role="alert" title="The application could not be played">{error}</Alert>}
      <Box pos="relative" bg="black" style={{ borderRadius: 8, overflow: 'hidden', aspectRatio: '4 / 3', maxHeight: 'calc(100vh - 160px)' }}>
        <canvas
          ref={canvasRef}
          data-testid="player-canvas"
          tabIndex={0}
          aria-label={`${ua.name}: the application's picture; click and type to use it`}
          style={{ width: '100%', height: '100%', objectFit: 'contain', display: 'block', touchAction: 'none', outline: 'none' }}
        />
        {showStats && stats && (
          <Text size="xs" pos="absolute" top={8} left={8} px={6} py={2} c="white" bg="rgba(0,0,0,0.6)" style={{ borderRadius: 4 }} data-testid="player-stats">
            {stats.codec} {stats.width}×{stats.height} · {stats.draws} frames · {Math.round(stats.latencyMs)} ms
          </Text>
        )}
      </Box>
      {phase === 'idle' && <Text size="sm" c="dimmed">Press Start: a VM is chosen for you and the application appears here.</Text>}
    </Stack>
  );
}
