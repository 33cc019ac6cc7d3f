import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IErrorResponse, IStatusResponse } from './model';

/**
 * Path of the server extension's REST API, relative to the base URL.
 */
export const API_NAMESPACE = 'jupyter-mlops/api';

/**
 * Error thrown by {@link requestAPI}.
 *
 * `status` is the HTTP status code, or 0 when no answer was received
 * (network failure) and `message` is the server's JSON `message` when it sent
 * one.
 */
export class MlopsApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown = null
  ) {
    super(message);
    this.name = 'MlopsApiError';
    const fields = asErrorResponse(body);
    this.code = typeof fields?.code === 'string' ? fields.code : null;
    this.hint = typeof fields?.hint === 'string' ? fields.hint : null;
  }

  /** The server's error `code`, when it sent one. */
  readonly code: string | null;
  /** The server's `hint` (what the user can do), when it sent one. */
  readonly hint: string | null;
}

/**
 * Call the jupyter-mlops server extension.
 *
 * @param endPoint API path under `jupyter-mlops/api`, e.g. `status`
 * @param init Initial values for the request
 * @param settings Server connection settings (defaults to the page's)
 * @returns The decoded JSON answer (or `null` for an empty body)
 * @throws {MlopsApiError} on network failure, HTTP error or invalid JSON
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MlopsApiError(`Cannot reach the Jupyter server: ${reason}`, 0);
  }

  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) {
        throw new MlopsApiError(
          `Invalid JSON from ${endPoint || API_NAMESPACE}`,
          response.status,
          text
        );
      }
      data = text;
    }
  }

  if (!response.ok) {
    throw new MlopsApiError(
      errorMessage(data) ??
        `${response.status} ${response.statusText || 'Error'}`.trim(),
      response.status,
      data
    );
  }
  return data as T;
}

/**
 * Fetch the server's status: version, tracking location, store state.
 */
export function fetchStatus(
  settings?: ServerConnection.ISettings
): Promise<IStatusResponse> {
  return requestAPI<IStatusResponse>('status', { method: 'GET' }, settings);
}

/**
 * Extract the `message` of a server error body, if any.
 */
function errorMessage(data: unknown): string | null {
  const fields = asErrorResponse(data);
  if (fields) {
    const { message, reason } = fields;
    if (typeof message === 'string' && message.length > 0) {
      return message;
    }
    if (typeof reason === 'string' && reason.length > 0) {
      return reason;
    }
  }
  return null;
}

function asErrorResponse(data: unknown): IErrorResponse | null {
  return data !== null && typeof data === 'object' && !Array.isArray(data)
    ? (data as IErrorResponse)
    : null;
}
