// bench/session's warm baseline in the page: an x11grab pipeline's H264 relayed by the bench over a
// bare WebSocket (a text message with the codec string, size and avcC record, then one access unit
// per binary message), decoded by WebCodecs and drawn into the page's prepared canvas with
// drawImage: the least a browser does to show a stream's first picture, no UVE protocol or SDK.
import { now } from './page';

/** The raw stream's first picture in the page, ms since epoch (the host's one clock). */
export interface RawFirstPicture {
  calledAt: number;
  /** the codec message handled (the VideoDecoder configured) */
  codecAt: number;
  receivedAt: number;
  decodedAt: number;
  drawnAt: number;
}

export function playRaw(url: string, canvas: HTMLCanvasElement, timeoutMs: number): Promise<RawFirstPicture> {
  const calledAt = now();
  const ctx = canvas.getContext('2d')!;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let decoder: VideoDecoder | null = null;
  const at = { calledAt, codecAt: NaN, receivedAt: NaN, decodedAt: NaN, drawnAt: NaN };
  return new Promise<RawFirstPicture>((resolve, reject) => {
    const end = (e?: Error): void => {
      clearTimeout(timer);
      ws.close();
      if (decoder && decoder.state !== 'closed') decoder.close();
      if (e) reject(e);
      else resolve(at);
    };
    const timer = setTimeout(() => end(new Error(`raw H264: no picture in ${timeoutMs} ms`)), timeoutMs);
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const m = JSON.parse(ev.data) as { codec: string; width: number; height: number; description: string };
        decoder = new VideoDecoder({
          output: (frame) => {
            if (!Number.isNaN(at.decodedAt)) return frame.close();
            at.decodedAt = now();
            ctx.drawImage(frame, 0, 0);
            frame.close();
            at.drawnAt = now();
            end();
          },
          error: (e) => end(e),
        });
        decoder.configure({ codec: m.codec, codedWidth: m.width, codedHeight: m.height, description: Uint8Array.from(atob(m.description), (c) => c.charCodeAt(0)), optimizeForLatency: true });
        at.codecAt = now();
        return;
      }
      // every access unit until the first picture comes out (the first is the keyframe)
      if (!decoder || decoder.state !== 'configured' || !Number.isNaN(at.decodedAt)) return;
      const first = Number.isNaN(at.receivedAt);
      if (first) at.receivedAt = now();
      decoder.decode(new EncodedVideoChunk({ type: first ? 'key' : 'delta', timestamp: 0, data: ev.data as ArrayBuffer }));
    };
    ws.onclose = () => Number.isNaN(at.decodedAt) && end(new Error('raw H264: the relay closed before the first picture'));
  });
}
