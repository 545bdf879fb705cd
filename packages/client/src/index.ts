// UVE Client (UC) SDK: UVE-1 gateway helpers, the UVE-3 stream client with UVE-4 local resources,
// browser rendering/input capture, and Node decoders.
export {
  StreamClient,
  StreamCloseError,
  streamUrl,
  type StreamClientOptions,
  type StreamClientEvents,
  type StreamState,
  type ConnectOptions,
  type ConnectTarget,
  type CodecConfig,
  type ClockSample,
  type DecodedPicture,
  type DecoderFactory,
  type FrameDecoderLike,
  type FrameEvent,
  type WelcomeMessage,
  type WebSocketLike,
  type WebSocketConstructor,
} from './stream-client';
export { browserResourceProviders, provideResource, isRefusal, type ResourceProvider, type ResourceProviders, type ResourceRefusal } from './resources';
export { GatewayClient, GatewayError, GRAPHQL_PATH, type AuthPayload, type GatewayClientOptions, type RequestApplicationInput, type SessionConnection, type SessionInfo, type UaInfo, type UserInfo } from './gateway-client';
export { attachCanvas, captureInput, prepareCanvas, toStreamPoint, type CanvasView, type CanvasViewOptions, type DrawPath, type DrawTimes, type InputCaptureOptions } from './browser';
export { Emitter, type Listener } from './events';
export * from './decoders';
