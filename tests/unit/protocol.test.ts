import { decodeFrame, encodeFrame, parseClientMessage, ProtocolError, closeReason } from '@uve/protocol';

describe('stream protocol', () => {
  it('round-trips a frame header and payload', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const buf = encodeFrame({ seq: 7, captureTs: 1732443000123.25, inputSeq: 42, keyframe: true, width: 1280, height: 720 }, payload);
    const { header, payload: p } = decodeFrame(buf);
    expect(header).toEqual({ seq: 7, captureTs: 1732443000123.25, inputSeq: 42, keyframe: true, width: 1280, height: 720 });
    expect(Array.from(p)).toEqual([1, 2, 3, 4, 5]);
  });

  it('rejects a truncated frame', () => {
    const buf = encodeFrame({ seq: 1, captureTs: 0, inputSeq: 0, keyframe: false, width: 1, height: 1 }, new Uint8Array(10));
    expect(() => decodeFrame(buf.subarray(0, buf.length - 1))).toThrow(/length/);
  });

  it('validates client messages', () => {
    expect(parseClientMessage('{"t":"input","seq":3,"ev":{"kind":"key","type":"down","code":"KeyA","key":"a"}}')).toEqual({
      t: 'input', seq: 3, ev: { kind: 'key', type: 'down', code: 'KeyA', key: 'a' },
    });
    expect(() => parseClientMessage('nope')).toThrow(ProtocolError);
    expect(() => parseClientMessage('{"t":"input","seq":-1,"ev":{"kind":"text","text":"x"}}')).toThrow(/seq/);
    expect(() => parseClientMessage('{"t":"input","seq":1,"ev":{"kind":"pointer","type":"down","x":"a","y":1}}')).toThrow(/x must be/);
    expect(() => parseClientMessage('{"t":"resource","id":1,"ok":true,"value":{"kind":"GEOLOCATION","latitude":91,"longitude":0}}')).toThrow(/latitude/);
    expect(() => parseClientMessage('{"t":"launch"}')).toThrow(/unknown message/);
  });

  it('keeps close reasons within a close frame', () => {
    expect(new TextEncoder().encode(closeReason('é'.repeat(200))).byteLength).toBeLessThanOrEqual(123);
  });
});
