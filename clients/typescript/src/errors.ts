// Every failure the client reports is a WitRpcError subclass, so callers can branch on
// `instanceof` and show `message` to people.

/** Base class of every error this client raises. */
export class WitRpcError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The server refused the access token (handshake; `status` is null) or a request's token
 * (`status` 561).
 */
export class UnauthorizedError extends WitRpcError {
  constructor(message: string, readonly status: number | null = null) {
    super(message);
  }
}

/** The server has no method with this name and argument count (status 400, "Method not found ..."). */
export class MethodNotFoundError extends WitRpcError {
  readonly status = 400;
}

/** The server could not read the call: wrong argument types or a malformed request (status 400). */
export class BadRequestError extends WitRpcError {
  readonly status = 400;
  constructor(readonly serverMessage: string, readonly details: string | null) {
    super(details ? `${serverMessage}: ${details}` : serverMessage);
  }
}

/**
 * The method failed on the server (status 500, or another non-success status).
 * `message` starts with the server's ErrorMessage (`serverMessage`, e.g. "Failed to
 * process request") followed by `details`, the server's ErrorDetails (for a throwing
 * method: its own error text).
 */
export class RemoteError extends WitRpcError {
  constructor(readonly status: number, readonly serverMessage: string | null, readonly details: string | null) {
    super(
      [serverMessage, details].filter((s): s is string => !!s).join(": ") || `remote error (status ${status})`,
    );
  }
}

/** No answer within the call's timeout. The server may still run the call. */
export class TimeoutError extends WitRpcError {}

/** The connection closed (or was never open) before the answer arrived. */
export class ConnectionClosedError extends WitRpcError {}

/** The peer sent something that is not WitRPC (in the chosen protocol), or the handshake failed. */
export class ProtocolError extends WitRpcError {}

/** The `CommunicationStatus` values the clients tell apart (any other number is a `RemoteError`). */
export const CommunicationStatus = {
  Unknown: 0,
  Ok: 200,
  BadRequest: 400,
  Timeout: 408,
  InternalServerError: 500,
  TransportError: 503,
  Unauthorized: 561,
} as const;

/** The start of the ErrorMessage of a 400 for an unknown method (the protocol has no field for it). */
const METHOD_NOT_FOUND = "Method not found";

/** The status and error texts of a response. */
export interface ResponseStatus {
  status: number;
  errorMessage: string | null;
  errorDetails: string | null;
}

/**
 * The error a response stands for, or `null` for status 200. This follows the table in
 * `docs/client-errors.md`, which the Rust client follows too.
 */
export function responseError(response: ResponseStatus): WitRpcError | null {
  const { status, errorMessage, errorDetails } = response;
  switch (status) {
    case CommunicationStatus.Ok:
      return null;
    case CommunicationStatus.BadRequest: {
      const message = errorMessage ?? "bad request";
      if (message.startsWith(METHOD_NOT_FOUND)) return new MethodNotFoundError(message);
      return new BadRequestError(message, errorDetails);
    }
    case CommunicationStatus.Unauthorized:
      return new UnauthorizedError(errorMessage ?? "unauthorized", status);
    default:
      return new RemoteError(status, errorMessage, errorDetails);
  }
}
