// ACS3-HMAC-SHA256 request signatures (Alibaba Cloud OpenAPI signature V3), as the official SDK makes
// them (alibabacloud_tea_openapi.utils.get_authorization) and Herald checks them (herald/api/signing.py):
//
//   CanonicalRequest = METHOD \n URI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n HashedPayload
//   StringToSign     = "ACS3-HMAC-SHA256" \n hex(sha256(CanonicalRequest))
//   Signature        = hex(hmac_sha256(AccessKeySecret, StringToSign))
//
// The secret never leaves WebCrypto: importSecret() turns it into a non-extractable HMAC key, and every
// function here that signs takes that CryptoKey, never the secret string.

export const ALGORITHM = 'ACS3-HMAC-SHA256';
export const API_VERSION = '2020-11-09';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const encoder = new TextEncoder();

/** Whether this page may use WebCrypto (a secure context: https, or http on localhost/127.0.0.1). */
export function cryptoAvailable() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

/**
 * Import an AccessKeySecret as a non-extractable HMAC-SHA256 key. The caller should drop the string
 * (and clear the field it came from) at once; only the CryptoKey is kept.
 */
export async function importSecret(secret) {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new TypeError('the AccessKeySecret is empty');
  }
  if (!cryptoAvailable()) {
    throw new Error(
      'WebCrypto is not available: open the console over https, or at http://127.0.0.1 or http://localhost',
    );
  }
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
}

/** RFC 3986 percent-encoding of UTF-8, as Python's quote(value, safe='~'): only A-Z a-z 0-9 - _ . ~ stay. */
export function percentEncode(value) {
  return encodeURIComponent(String(value)).replace(
    /[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

// Python sorts str by code point; JavaScript's default sort compares UTF-16 code units.
function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function entries(params) {
  const list = Array.isArray(params) ? params : Object.entries(params ?? {});
  const out = [];
  const seen = new Set();
  for (const [name, value] of list) {
    if (value === undefined || value === null) continue;
    if (seen.has(name)) throw new Error(`the parameter ${name} is given twice`);
    seen.add(name);
    out.push([String(name), String(value)]);
  }
  return out;
}

/** The canonical query: parameters sorted by name, names as they are, values percent-encoded. */
export function canonicalQuery(params) {
  return entries(params)
    .sort((a, b) => byCodePoint(a[0], b[0]))
    .map(([name, value]) => `${name}=${percentEncode(value)}`)
    .join('&');
}

/** The query string to send: names and values percent-encoded, in the canonical order. */
export function queryString(params) {
  return entries(params)
    .sort((a, b) => byCodePoint(a[0], b[0]))
    .map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`)
    .join('&');
}

/**
 * Canonical headers over every header given: names lower-cased and sorted, values trimmed, a repeated
 * name's values sorted and joined with ",". `headers` is an object or a list of [name, value] pairs.
 * Returns { canonical: "name:value\n...", signedHeaders: "name1;name2" }.
 */
export function canonicalHeaders(headers) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers ?? {});
  const values = new Map();
  for (const [name, value] of list) {
    if (value === undefined || value === null) continue;
    const key = String(name).toLowerCase();
    if (!values.has(key)) values.set(key, []);
    values.get(key).push(String(value).trim());
  }
  const names = [...values.keys()].sort(byCodePoint);
  return {
    canonical: names.map((n) => `${n}:${values.get(n).sort(byCodePoint).join(',')}\n`).join(''),
    signedHeaders: names.join(';'),
  };
}

/** The V3 CanonicalRequest. */
export function canonicalRequest({ method, path = '/', query = {}, headers, payloadHash = EMPTY_SHA256 }) {
  const { canonical, signedHeaders } = canonicalHeaders(headers);
  return [method.toUpperCase(), path || '/', canonicalQuery(query), canonical, signedHeaders, payloadHash].join(
    '\n',
  );
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Hex SHA-256 of a string (UTF-8) or bytes. */
export async function sha256Hex(data) {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

/** The V3 StringToSign of a canonical request. */
export async function stringToSign(canonical) {
  return `${ALGORITHM}\n${await sha256Hex(canonical)}`;
}

/** Hex HMAC-SHA256, with the imported key, of the StringToSign built from `canonical`. */
export async function signature(key, canonical) {
  return hex(await crypto.subtle.sign('HMAC', key, encoder.encode(await stringToSign(canonical))));
}

/** `x-acs-date`: UTC, to the second: YYYY-MM-DDTHH:MM:SSZ. */
export function acsDate(date = new Date()) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A fresh `x-acs-signature-nonce`: 128 random bits in hex. */
export function newNonce() {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Sign an RPC-style request. Returns what to send:
 *   { url: "/?<query>", headers: {...x-acs-*, Authorization}, canonicalRequest, signature }.
 * `host` is the Host header the browser will send (new URL(endpoint).host); it is signed but cannot be
 * set from a page, so it is not among the headers returned. `date` and `nonce` are for tests.
 */
export async function signRequest({
  key,
  accessKeyId,
  host,
  action,
  query = {},
  body = '',
  method = 'POST',
  path = '/',
  version = API_VERSION,
  date = acsDate(),
  nonce = newNonce(),
}) {
  if (!key) throw new Error('no signing key: enter an access key pair first');
  if (!accessKeyId) throw new Error('no AccessKeyId');
  if (!host) throw new Error('no host to sign');
  const payloadHash = body === '' ? EMPTY_SHA256 : await sha256Hex(body);
  const headers = {
    host,
    'x-acs-action': action,
    'x-acs-content-sha256': payloadHash,
    'x-acs-date': date,
    'x-acs-signature-nonce': nonce,
    'x-acs-version': version,
  };
  const canonical = canonicalRequest({ method, path, query, headers, payloadHash });
  const sig = await signature(key, canonical);
  const { signedHeaders } = canonicalHeaders(headers);
  const sent = { ...headers };
  delete sent.host;
  sent.Authorization = `${ALGORITHM} Credential=${accessKeyId},SignedHeaders=${signedHeaders},Signature=${sig}`;
  const qs = queryString(query);
  return { url: qs ? `${path}?${qs}` : path, headers: sent, canonicalRequest: canonical, signature: sig };
}
