#!/usr/bin/env node
// Independent OpenID for Verifiable Credential Issuance 1.0 wallet client for the tests: the
// pre-authorized code flow driven by `@openid4vc/openid4vci` (the client inside Credo wallets),
// with `@openid4vc/oauth2` / `@openid4vc/utils` and `jose` for the holder key. Nothing in here
// comes from the project.
//
//   node wallet.mjs OFFER_URI [--tx-code X] [--key ed25519|p256]
//                   [--mode normal|reuse|forged-proof|stale-nonce|no-proof]
//
// OFFER_URI is `openid-credential-offer://?credential_offer=<url-encoded JSON>` (or
// `...?credential_offer_uri=<url>`). Prints ONE JSON object on stdout and exits 0, protocol errors
// included (they go into `errors`); non-zero only when the harness itself fails (bad arguments,
// a crash outside the protocol steps).
//
// Modes:
//   normal        offer -> metadata -> token -> nonce -> proof -> credential
//   reuse         normal, then a second token request with the same pre-authorized code; its
//                 error is reported under step "token" (ok = the first flow succeeded)
//   forged-proof  the proof JWT names key A's did:key in `kid` but is signed with key B
//   stale-nonce   the nonce endpoint is called, but the proof carries a made-up nonce
//   no-proof      the credential request carries no proof at all
//
// Network: plain http only to loopback (127.0.0.1, localhost, [::1]); the library's
// `allowInsecureUrls` global option is switched on only when the credential issuer is loopback.

import crypto from 'node:crypto';
import process from 'node:process';

import {
  Openid4vciClient,
  Openid4vciRetrieveCredentialsError,
} from '@openid4vc/openid4vci';
import {
  Oauth2ClientErrorResponseError,
  clientAuthenticationAnonymous,
} from '@openid4vc/oauth2';
import {InvalidFetchResponseError, ValidationError, setGlobalConfig} from '@openid4vc/utils';
import * as jose from 'jose';

const MODES = ['normal', 'reuse', 'forged-proof', 'stale-nonce', 'no-proof'];
const KEYS = {
  ed25519: {alg: 'EdDSA', options: {crv: 'Ed25519'}},
  p256: {alg: 'ES256', options: {}},
};
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const FETCH_TIMEOUT_MS = 30000;

class UsageError extends Error {}

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const opts = {mode: 'normal', key: 'ed25519', txCode: undefined, offer: undefined};
  for(let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = () => {
      if(i + 1 >= argv.length) {
        throw new UsageError(`${a} needs a value`);
      }
      return argv[++i];
    };
    if(a === '--tx-code') {
      opts.txCode = take();
    } else if(a === '--key') {
      opts.key = take();
    } else if(a === '--mode') {
      opts.mode = take();
    } else if(a.startsWith('--')) {
      throw new UsageError(`unknown option ${a}`);
    } else if(opts.offer === undefined) {
      opts.offer = a;
    } else {
      throw new UsageError(`unexpected argument ${a}`);
    }
  }
  if(!opts.offer) {
    throw new UsageError('the credential offer URI is required');
  }
  if(!MODES.includes(opts.mode)) {
    throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
  }
  if(!(opts.key in KEYS)) {
    throw new UsageError(`--key must be one of ${Object.keys(KEYS).join(', ')}`);
  }
  return opts;
}

// ---------------------------------------------------------------- did:key
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function base58btc(bytes) {
  let zeros = 0;
  while(zeros < bytes.length && bytes[zeros] === 0) {
    zeros++;
  }
  const digits = [];
  for(const byte of bytes) {
    let carry = byte;
    for(let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while(carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  return '1'.repeat(zeros) + digits.reverse().map(d => B58[d]).join('');
}

function publicKeyBytes(jwk) {
  const x = Buffer.from(jwk.x, 'base64url');
  if(jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    return Buffer.concat([Buffer.from([0xed, 0x01]), x]); // multicodec ed25519-pub
  }
  if(jwk.kty === 'EC' && jwk.crv === 'P-256') {
    const y = Buffer.from(jwk.y, 'base64url');
    const prefix = (y[y.length - 1] & 1) ? 0x03 : 0x02; // SEC1 compressed point
    return Buffer.concat([Buffer.from([0x80, 0x24, prefix]), x]); // multicodec p256-pub (0x1200)
  }
  throw new Error(`no did:key encoding for ${jwk.kty}/${jwk.crv}`);
}

async function holderKey(kind) {
  const {alg, options} = KEYS[kind];
  const {publicKey, privateKey} = await jose.generateKeyPair(alg, {...options, extractable: true});
  const publicJwk = await jose.exportJWK(publicKey);
  const multibase = 'z' + base58btc(publicKeyBytes(publicJwk));
  const did = `did:key:${multibase}`;
  return {alg, publicJwk, privateKey, did, kid: `${did}#${multibase}`};
}

// ---------------------------------------------------------------- network
function isLoopbackUrl(value) {
  try {
    return LOOPBACK.has(new URL(value).hostname);
  } catch {
    return false;
  }
}

function offerIssuerUrl(offerUri) {
  // Where the offer points, read before the library validates it (it insists on https:// unless
  // insecure URLs are allowed).
  const query = offerUri.includes('?') ? offerUri.slice(offerUri.indexOf('?') + 1) : '';
  const params = new URLSearchParams(query);
  if(params.get('credential_offer_uri')) {
    return params.get('credential_offer_uri');
  }
  try {
    return JSON.parse(params.get('credential_offer') ?? '').credential_issuer;
  } catch {
    return undefined;
  }
}

function makeFetch(log) {
  return async (input, init = {}) => {
    const url = typeof input === 'string' ? input : (input.url ?? String(input));
    const parsed = new URL(url);
    if(parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackUrl(url))) {
      throw new Error(`refusing to fetch ${url}: plain http only to loopback`);
    }
    const entry = {method: (init.method ?? 'GET').toUpperCase(), url, status: null};
    log.push(entry);
    const response = await fetch(input, {
      ...init,
      signal: init.signal ?? AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    entry.status = response.status;
    return response;
  };
}

// ---------------------------------------------------------------- library callbacks
function callbacks(fetchImpl, keysByKid, signWith) {
  return {
    fetch: fetchImpl,
    clientAuthentication: clientAuthenticationAnonymous(),
    generateRandom: length => new Uint8Array(crypto.randomBytes(length)),
    hash: (data, alg) => {
      const name = {'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512'}[alg];
      if(!name) {
        throw new Error(`unsupported hash ${alg}`);
      }
      return new Uint8Array(crypto.createHash(name).update(data).digest());
    },
    signJwt: async (signer, {header, payload}) => {
      const claimed = keysByKid.get(signer.didUrl ?? signer.kid);
      if(!claimed) {
        throw new Error(`no holder key for signer ${JSON.stringify(signer)}`);
      }
      // `signWith` (forged-proof mode) replaces the private key, never the header.
      const key = signWith ?? claimed;
      const jwt = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
        .setProtectedHeader(header)
        .sign(key.privateKey);
      return {jwt, signerJwk: key.publicJwk};
    },
    decryptJwe: () => {
      throw new Error('credential response encryption is not used by this harness');
    },
  };
}

// ---------------------------------------------------------------- error reports
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function describeError(step, err) {
  const entry = {
    step,
    status: null,
    error: null,
    error_description: null,
    message: String(err?.message ?? err).slice(0, 2000),
    kind: err?.constructor?.name ?? typeof err,
  };
  const cause = err?.cause?.cause ?? err?.cause;
  if(cause && (cause.code || cause.message)) {
    entry.message += ` (${cause.code ?? cause.message})`; // e.g. ECONNREFUSED from fetch
  }
  let body;
  if(err instanceof Oauth2ClientErrorResponseError) {
    // token endpoint: the parsed OAuth error body and the fetch Response
    entry.status = err.response?.status ?? null;
    body = err.errorResponse;
  } else if(err instanceof Openid4vciRetrieveCredentialsError) {
    // credential endpoint: err.response = {ok: false, response: Response, credentialErrorResponseResult?,
    // credentialResponseResult?, wwwAuthenticate?}
    entry.status = err.response?.response?.status ?? null;
    body = err.response?.credentialErrorResponseResult?.data;
    if(!body && err.response?.response) {
      body = parseJson(await err.response.response.clone().text().catch(() => ''));
    }
    const challenge = (err.response?.wwwAuthenticate ?? []).find(c => c?.error);
    if(!body?.error && challenge) {
      body = {error: challenge.error, error_description: challenge.error_description};
    }
    if(err.response?.credentialResponseResult?.error) {
      entry.message += `: ${JSON.stringify(err.response.credentialResponseResult.error.issues)}`;
    }
  } else if(err instanceof InvalidFetchResponseError) {
    // nonce endpoint, well-known metadata, unparseable token errors: raw text + Response
    entry.status = err.response?.status ?? null;
    body = parseJson(err.textResponse ?? '');
  } else if(err instanceof ValidationError && err.zodError) {
    entry.message += `: ${JSON.stringify(err.zodError.issues)}`.slice(0, 4000);
  }
  if(body && typeof body === 'object' && !Array.isArray(body)) {
    entry.error = typeof body.error === 'string' ? body.error : null;
    entry.error_description = typeof body.error_description === 'string' ?
      body.error_description : null;
  }
  return entry;
}

// ---------------------------------------------------------------- the flow
async function run(opts) {
  const requests = [];
  const report = {
    ok: false,
    mode: opts.mode,
    holder_did: null,
    holder_kid: null,
    holder_public_jwk: null,
    configuration_id: null,
    format: null,
    credentials: [],
    issuer_metadata: null,
    authorization_server_metadata: null,
    version_detected: null,
    insecure_urls_allowed: false,
    credential_offer: null,
    token_response: null,
    c_nonce: null,
    proof_jwt: null,
    credential_response: null,
    errors: [],
    requests,
  };

  const issuerUrl = offerIssuerUrl(opts.offer);
  if(issuerUrl && /^http:\/\//i.test(issuerUrl) && isLoopbackUrl(issuerUrl)) {
    setGlobalConfig({allowInsecureUrls: true});
    report.insecure_urls_allowed = true;
  }

  const holder = await holderKey(opts.key);
  report.holder_did = holder.did;
  report.holder_kid = holder.kid;
  report.holder_public_jwk = holder.publicJwk;
  const keysByKid = new Map([[holder.kid, holder]]);
  let signWith;
  if(opts.mode === 'forged-proof') {
    signWith = await holderKey(opts.key); // key B: signs, while the header names key A
    report.forged_signing_did = signWith.did;
  }

  const client = new Openid4vciClient({
    callbacks: callbacks(makeFetch(requests), keysByKid, signWith),
  });

  const step = async (name, fn) => {
    try {
      return {value: await fn()};
    } catch(err) {
      report.errors.push(await describeError(name, err));
      return {failed: true};
    }
  };

  const offer = await step('offer', () => client.resolveCredentialOffer(opts.offer));
  if(offer.failed) {
    return report;
  }
  const credentialOffer = offer.value;
  report.credential_offer = credentialOffer;
  report.configuration_id = credentialOffer.credential_configuration_ids[0] ?? null;

  const metadata = await step('metadata',
    () => client.resolveIssuerMetadata(credentialOffer.credential_issuer));
  if(metadata.failed) {
    return report;
  }
  const issuerMetadata = metadata.value;
  report.issuer_metadata = issuerMetadata.credentialIssuer;
  report.authorization_server_metadata = issuerMetadata.authorizationServers;
  report.version_detected = issuerMetadata.originalDraftVersion;
  report.format = issuerMetadata.credentialIssuer.credential_configurations_supported?.[
    report.configuration_id]?.format ?? null;

  const tokenRequest = () => client.retrievePreAuthorizedCodeAccessTokenFromOffer({
    credentialOffer,
    issuerMetadata,
    txCode: opts.txCode,
  });
  const token = await step('token', tokenRequest);
  if(token.failed) {
    return report;
  }
  const {accessTokenResponse} = token.value;
  report.token_response = accessTokenResponse;

  const nonce = await step('nonce', () => client.requestNonce({issuerMetadata}));
  if(nonce.failed) {
    return report;
  }
  report.c_nonce = nonce.value.c_nonce;

  let proofs;
  if(opts.mode !== 'no-proof') {
    const proofNonce = opts.mode === 'stale-nonce' ?
      `stale-${crypto.randomBytes(16).toString('hex')}` : nonce.value.c_nonce;
    const proof = await step('proof', () => client.createCredentialRequestJwtProof({
      issuerMetadata,
      credentialConfigurationId: report.configuration_id,
      nonce: proofNonce,
      signer: {method: 'did', didUrl: holder.kid, alg: holder.alg},
    }));
    if(proof.failed) {
      return report;
    }
    report.proof_nonce = proofNonce;
    report.proof_jwt = proof.value.jwt;
    proofs = {jwt: [proof.value.jwt]};
  }

  const credential = await step('credential', () => client.retrieveCredentials({
    issuerMetadata,
    accessToken: accessTokenResponse.access_token,
    credentialConfigurationId: report.configuration_id,
    proofs,
  }));
  if(credential.failed) {
    return report;
  }
  const response = credential.value.credentialResponse;
  report.credential_response = response;
  const received = response.credentials ??
    (response.credential !== undefined ? [response.credential] : []);
  report.credentials = received.map(item =>
    (item && typeof item === 'object' && 'credential' in item) ? item.credential : item);
  report.ok = report.credentials.length > 0;

  if(opts.mode === 'reuse') {
    const again = await step('token', tokenRequest);
    report.second_token_issued = !again.failed;
  }
  return report;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch(err) {
    if(err instanceof UsageError) {
      process.stderr.write(`wallet.mjs: ${err.message}\n` +
        'usage: node wallet.mjs OFFER_URI [--tx-code X] [--key ed25519|p256] ' +
        `[--mode ${MODES.join('|')}]\n`);
      process.exit(2);
    }
    throw err;
  }
  const report = await run(opts);
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch(err => {
  process.stderr.write(`wallet.mjs crashed: ${err?.stack ?? err}\n`);
  process.exit(1);
});
