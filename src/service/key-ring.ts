import { createPublicKey, randomBytes } from "node:crypto";
import { addSeconds, type Clock } from "../core/clock.js";
import { TesseraError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { deriveKey, open, seal } from "../core/secret-box.js";
import {
  generateSigningKey,
  hmacSigningKey,
  signingKeyFromPem,
  type PublicJwk,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from "../core/signing-key.js";
import type { KeyEncryption, SigningKeyRecord, Store } from "../store/store.js";

/** Options of {@link loadKeyRing}. */
export interface KeyRingOptions {
  readonly store: Store;
  readonly algorithm: SigningAlgorithm;
  /** Server secret, or `null` in development mode. */
  readonly secret: string | null;
  readonly hs256Secret: Buffer | null;
  /** Retired keys stay usable for verification this long (the access-token lifetime). */
  readonly retiredKeyGraceSeconds: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** The keys of a running server: the one that signs, all that verify, and the rotation key. */
export interface KeyRing {
  readonly signingKey: SigningKey;
  /** HMAC key deriving refresh-token successors. */
  readonly rotationKey: Buffer;
  findVerificationKey(kid: string | undefined, alg: SigningAlgorithm): VerificationKey | undefined;
  /** Public keys for `/.well-known/jwks.json`; empty for HS256. */
  readonly jwks: { readonly keys: readonly PublicJwk[] };
}

const DEVELOPMENT_SECRET_SETTING = "development_secret";
const ENCRYPTION_PURPOSE = "signing-key-encryption";
const ROTATION_PURPOSE = "refresh-token-rotation";

function verificationKeyOf(record: SigningKeyRecord): { key: VerificationKey; jwk: PublicJwk } {
  const jwk = JSON.parse(record.publicKey) as PublicJwk;
  const pem = createPublicKey({ key: { ...jwk }, format: "jwk" }).export({ type: "spki", format: "pem" }) as string;
  return { key: { kid: record.kid, alg: record.alg as SigningAlgorithm, key: pem }, jwk };
}

async function serverSecret(
  options: KeyRingOptions,
  existing: readonly SigningKeyRecord[],
): Promise<{ secret: string; encryption: KeyEncryption }> {
  if (options.secret !== null) return { secret: options.secret, encryption: "secret" };
  // Without TESSERA_SECRET on a database whose keys were sealed with one, the deployment is
  // wrong: refuse, rather than write a development secret and key beside them.
  if (
    options.algorithm !== "HS256" &&
    existing.some((record) => record.retiredAt === null && record.encryption === "secret")
  ) {
    throw new TesseraError(
      "signing_key_unavailable",
      "this database's signing keys are sealed with TESSERA_SECRET; set it",
    );
  }
  // Development mode still needs a secret nobody else knows: keep a random one in the database.
  const secret = await options.store.ensureSetting(DEVELOPMENT_SECRET_SETTING, randomBytes(32).toString("base64url"));
  return { secret, encryption: "development" };
}

async function storeNewKey(
  store: Store,
  algorithm: Exclude<SigningAlgorithm, "HS256">,
  sealingKey: Buffer,
  encryption: KeyEncryption,
  now: Date,
): Promise<SigningKey> {
  const key = generateSigningKey(algorithm);
  await store.insertSigningKey({
    kid: key.kid,
    alg: key.alg,
    publicKey: JSON.stringify(key.publicJwk),
    privateKeySealed: seal(sealingKey, key.privateKey as string, key.kid),
    encryption,
    createdAt: now,
    retiredAt: null,
  });
  return key;
}

/**
 * Creates a new signing key for the configured algorithm and retires every other unretired
 * key. Returns the new `kid`. Throws `TypeError` for HS256.
 */
export async function rotateSigningKey(options: KeyRingOptions): Promise<string> {
  if (options.algorithm === "HS256")
    throw new TypeError("HS256 signs with TESSERA_HS256_SECRET; rotate that secret instead");
  const { secret, encryption } = await serverSecret(options, await options.store.listSigningKeys());
  const now = options.clock.now();
  const key = await storeNewKey(
    options.store,
    options.algorithm,
    deriveKey(secret, ENCRYPTION_PURPOSE),
    encryption,
    now,
  );
  for (const record of await options.store.listSigningKeys()) {
    if (record.kid !== key.kid && record.retiredAt === null) await options.store.retireSigningKey(record.kid, now);
  }
  options.logger.info({ kid: key.kid, alg: key.alg }, "rotated the signing key");
  return key.kid;
}

/**
 * Loads the signing keys from the store, creating the first one when there is none, and
 * retiring keys sealed in development mode once a real secret is set. Throws
 * `signing_key_unavailable` when stored keys cannot be decrypted with the secret given.
 */
export async function loadKeyRing(options: KeyRingOptions): Promise<KeyRing> {
  const { store, algorithm, clock, logger } = options;
  const existing = await store.listSigningKeys();
  const { secret, encryption } = await serverSecret(options, existing);
  const rotationKey = deriveKey(secret, ROTATION_PURPOSE);
  if (algorithm === "HS256") {
    if (!options.hs256Secret) throw new TypeError("hs256Secret is required for HS256");
    const signingKey = hmacSigningKey(options.hs256Secret);
    const verification: VerificationKey = { kid: signingKey.kid, alg: "HS256", key: signingKey.publicKey };
    return Object.freeze<KeyRing>({
      signingKey,
      rotationKey,
      findVerificationKey: (kid, alg) =>
        alg === "HS256" && (kid === undefined || kid === signingKey.kid) ? verification : undefined,
      jwks: Object.freeze({ keys: Object.freeze([]) }),
    });
  }

  const sealingKey = deriveKey(secret, ENCRYPTION_PURPOSE);
  const now = clock.now();
  let records = existing;
  const sealedInDevelopment =
    encryption === "secret"
      ? records.filter((record) => record.retiredAt === null && record.encryption === "development")
      : [];
  for (const record of sealedInDevelopment) {
    await store.retireSigningKey(record.kid, now);
    logger.warn({ kid: record.kid }, "retired a signing key sealed in development mode");
  }
  if (sealedInDevelopment.length > 0) records = await store.listSigningKeys();
  const isUsable = (record: SigningKeyRecord) =>
    record.retiredAt === null && record.alg === algorithm && record.encryption === encryption;
  if (!records.some(isUsable)) {
    const key = await storeNewKey(store, algorithm, sealingKey, encryption, now);
    logger.info({ kid: key.kid, alg: key.alg }, "created a signing key");
    // Re-read: when instances start together, all of them settle on the oldest usable key.
    records = await store.listSigningKeys();
  }
  const current = records.find(isUsable);
  if (!current) throw new TesseraError("signing_key_unavailable", "no usable signing key");
  const signingKey = signingKeyFromPem(algorithm, open(sealingKey, current.privateKeySealed, current.kid));

  const verifyUntil = addSeconds(now, -options.retiredKeyGraceSeconds);
  const published = records
    .filter((record) => record.retiredAt === null || record.retiredAt > verifyUntil)
    .map(verificationKeyOf);
  const byKid = new Map(published.map(({ key }) => [key.kid, key]));
  return Object.freeze<KeyRing>({
    signingKey,
    rotationKey,
    findVerificationKey: (kid, alg) => {
      const key = kid === undefined ? undefined : byKid.get(kid);
      return key?.alg === alg ? key : undefined;
    },
    jwks: Object.freeze({ keys: Object.freeze(published.map(({ jwk }) => jwk)) }),
  });
}
