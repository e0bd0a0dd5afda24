// witrpc-client: a TypeScript client for WitRPC servers (protocol 3, and protocol 2 for .NET WitRPC 2.x).
// Part of an independent, WitRPC-compatible implementation (not the official WitRPC).

export { WitRpcClient } from "./client.js";
export type { CallOptions, ClientOptions, ConnectionState, ReconnectOptions, ResumeInfo } from "./client.js";
export {
  WitRpcError,
  UnauthorizedError,
  MethodNotFoundError,
  BadRequestError,
  RemoteError,
  TimeoutError,
  ConnectionClosedError,
  ProtocolError,
  CommunicationStatus,
  responseError,
  type ResponseStatus,
} from "./errors.js";
export { contractId, methodId, fnv1a64Utf16 } from "./ids.js";
export { decodeBytes, toBase64, fromBase64, json, messagePack, type Format, type ParameterSerializer } from "./serializer.js";
export * as msgpack from "./msgpack.js";
