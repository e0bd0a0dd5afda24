// Every failure the client reports is a WitRpcError subclass, so callers can branch on
// `instanceof` and show `message` to people.

/** Base class of every error this client raises. */
export class WitRpcError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server refused the access token (handshake) or a request's token (status 561). */
export class UnauthorizedError extends WitRpcError {}

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

/** The peer sent something that is not WitRPC protocol 3, or the handshake failed. */
export class ProtocolError extends WitRpcError {}
