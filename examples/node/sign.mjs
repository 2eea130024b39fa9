// Sign one request for a scout_auth server in Node.js: RFC 9421 signature
// with http-message-signatures, RFC 9530 Content-Digest with node:crypto.
//
//   scout-auth export-key --format jwk < token.txt > key.jwk   # the token on stdin
//   SCOUT_KEY_JWK_FILE=key.jwk node sign.mjs https://api.example.com/echo '{"hello": "world"}'
//
// Prints one JSON line: the response (status, body) and the request it sent;
// with --dry-run, only the signed request (nothing is sent).
import { createHash, createPrivateKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSigner, httpbis } from "http-message-signatures";

const args = process.argv.slice(2);
const dryRun = args[0] === "--dry-run";
const [url, body = ""] = dryRun ? args.slice(1) : args;

// The private JWK (RFC 8037: kty OKP, crv Ed25519, x, d; kid = the key id).
const jwk = JSON.parse(
  process.env.SCOUT_KEY_JWK ?? readFileSync(process.env.SCOUT_KEY_JWK_FILE, "utf8"),
);
const key = createPrivateKey({ key: jwk, format: "jwk" });

// Content-Digest (RFC 9530 §2): the SHA-256 of the exact body bytes sent,
// as a Structured Fields Byte Sequence (base64 between colons).
const bytes = Buffer.from(body, "utf8");
const digest = `sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`;

const request = {
  method: "POST",
  url: new URL(url), // a URL object: @target-uri and @authority in normal form
  headers: { "content-type": "application/json", "content-digest": digest },
};
const signed = await httpbis.signMessage(
  {
    key: createSigner(key, "ed25519", jwk.kid),
    // What scout_auth's default policy requires to be covered.
    fields: ["@method", "@authority", "@target-uri", "content-digest"],
    // created is required; scout_auth's default policy also requires a
    // nonce, which it remembers for the signature's lifetime (replays: 401).
    params: ["created", "expires", "keyid", "alg", "nonce"],
    paramValues: { nonce: randomBytes(16).toString("base64url") },
  },
  request,
);

const sent = { method: signed.method, url: signed.url.toString(), headers: signed.headers };
if (dryRun) {
  console.log(JSON.stringify({ request: sent }));
  process.exit(0);
}
const response = await fetch(signed.url, {
  method: signed.method,
  headers: signed.headers,
  body: bytes,
});
console.log(JSON.stringify({ status: response.status, body: await response.text(), request: sent }));
