import sharp from 'sharp';
import type { DecodedFrame, FrameDecoder } from './index';

export class MjpegDecoder implements FrameDecoder {
  private closed = false;

  async decode(payload: Uint8Array): Promise<DecodedFrame> {
    if (this.closed) throw new Error('MJPEG decoder closed');
    const { data, info } = await sharp(payload).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
