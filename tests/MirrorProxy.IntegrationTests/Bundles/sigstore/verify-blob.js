'use strict';
// Verifies a cosign-style blob signature (base64 DER ECDSA over SHA-256) with a PEM public key, offline, through
// the JS Sigstore implementation: the signature is wrapped in a Sigstore bundle v0.3 with a public-key hint and no
// transparency-log entry, and checked with no log, CT or timestamp thresholds (cosign's --insecure-ignore-tlog).
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const [keyFile, sigFile, blobFile] = process.argv.slice(2);
const blob = fs.readFileSync(blobFile);
const spki = crypto.createPublicKey(fs.readFileSync(keyFile)).export({ type: 'spki', format: 'der' });
const hint = crypto.createHash('sha256').update(spki).digest('base64');
const bundle = bundleFromJSON({
  mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
  messageSignature: {
    messageDigest: { algorithm: 'SHA2_256', digest: crypto.createHash('sha256').update(blob).digest('base64') },
    signature: fs.readFileSync(sigFile, 'utf8').trim(),
  },
});
const root = { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] };
const trust = toTrustMaterial(root, { [hint]: { rawBytes: spki } });
try {
  new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle, blob));
  console.log('Verified OK');
} catch (e) {
  console.log('Verification failure: ' + e.message);
  process.exit(1);
}
