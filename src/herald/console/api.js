// Signed calls to Herald's ICE-style OpenAPI: POST / with the parameters in the query string.

import { API_VERSION, signRequest } from './sign.js';

/** Codes that mean the key pair (or the clock) is wrong, not the request. */
export const AUTH_CODES = new Set([
  'IncompleteSignature',
  'SignatureDoesNotMatch',
  'SignatureNonceUsed',
  'InvalidAccessKeyId.NotFound',
  'InvalidAccessKeyId.Inactive',
  'InvalidTimeStamp.Expired',
  'InvalidTimeStamp.Format',
  'Forbidden.RAM',
]);

/** A failed call: the ICE error envelope's Code and Message, or a transport problem. */
export class ApiError extends Error {
  constructor({ code, message, requestId = '', status = 0, recommend = '', action = '' }) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.requestId = requestId;
    this.status = status;
    this.recommend = recommend;
    this.action = action;
  }

  /** "Code: Message" — what a person needs to see. */
  describe() {
    return `${this.code}: ${this.message}`;
  }
}

/** Read an error response: the ICE envelope if it is one, else a description of what came. */
export async function errorFromResponse(response, action = '') {
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && typeof body === 'object' && typeof body.Code === 'string') {
    return new ApiError({
      code: body.Code,
      message: String(body.Message ?? ''),
      requestId: String(body.RequestId ?? ''),
      recommend: String(body.Recommend ?? ''),
      status: response.status,
      action,
    });
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError({
    code: `HTTP${response.status}`,
    message: `${response.status} ${response.statusText}${snippet ? `: ${snippet}` : ''}`,
    status: response.status,
    action,
  });
}

/** A fetch that turns network failures into an ApiError. */
export async function send(url, init, action = '') {
  try {
    return await fetch(url, { cache: 'no-store', credentials: 'omit', ...init });
  } catch (err) {
    throw new ApiError({
      code: 'NetworkError',
      message: `the server at ${new URL(url, location.href).origin} did not answer (${err.message})`,
      action,
    });
  }
}

export class HeraldApi {
  /**
   * @param {object} options
   * @param {string} options.endpoint the server's origin, e.g. "http://127.0.0.1:8080"
   * @param {string} options.accessKeyId
   * @param {CryptoKey} options.key the AccessKeySecret as a non-extractable HMAC key (sign.importSecret)
   */
  constructor({ endpoint, accessKeyId, key }) {
    this.endpoint = new URL(endpoint).origin;
    this.host = new URL(endpoint).host;
    this.accessKeyId = accessKeyId;
    this.key = key;
  }

  /**
   * Call an action; resolves to the response body (with its RequestId) or rejects with an ApiError.
   * Parameters whose value is undefined, null or "" are not sent.
   */
  async call(action, params = {}) {
    const query = Object.fromEntries(
      Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''),
    );
    let signed;
    try {
      signed = await signRequest({
        key: this.key,
        accessKeyId: this.accessKeyId,
        host: this.host,
        action,
        query,
        version: API_VERSION,
      });
    } catch (err) {
      throw new ApiError({ code: 'SigningFailed', message: err.message, action });
    }
    const response = await send(
      this.endpoint + signed.url,
      { method: 'POST', headers: { Accept: 'application/json', ...signed.headers } },
      action,
    );
    if (!response.ok) throw await errorFromResponse(response, action);
    try {
      return await response.json();
    } catch {
      throw new ApiError({
        code: 'BadResponse',
        message: `${action} answered ${response.status} with a body that is not JSON`,
        status: response.status,
        action,
      });
    }
  }
}
