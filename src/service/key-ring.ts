import { createPublicKey, randomBytes } from "node:crypto";
import { addSeconds, type Clock } from "../core/clock.js";
import { TesseraError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { deriveKey, open, seal } from "../core/secret-box.js";
import {
  generateSigningKey,
  hmacSigningKey,
  keyScheduleStep,
  signingKeyFromPem,
  type PublicJwk,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from "../core/signing-key.js";
import type { KeyEncryption, NewSigningKey, SigningKeyRecord, Store } from "../store/store.js";

/** Options of {@link loadKeyRing}. */
export interface KeyRingOptions {
  readonly store: Store;
  readonly algorithm: SigningAlgorithm;
  /** Server secret, or `null` in development mode. */
  readonly secret: string | null;
  readonly hs256Secret: Buffer | null;
  /** Retired keys stay usable for verification and published this long (the access-token lifetime and more). */
  readonly retiredKeyGraceSeconds: number;
  /** Seconds a key signs before the schedule replaces it; `null`: only `tessera keys rotate` does. */
  readonly rotationSeconds: number | null;
  /** Seconds a new key is published before it signs (a JWKS cache lifetime and more). */
  readonly publicationLeadSeconds: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** The keys of a running server: the one that signs, all that verify, and the rotation key. */
export interface KeyRing {
  /** `null` only when loaded without electing (a CLI command) and no key suits this instance. */
  readonly signingKey: SigningKey | null;
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
  return { secret: await developmentSecret(options.store), encryption: "development" };
}

/**
 * The secret of development mode (no `TESSERA_SECRET`): development still needs a secret nobody
 * else knows, so a random one is kept in the database, the same for every instance.
 */
export function developmentSecret(store: Store): Promise<string> {
  return store.ensureSetting(DEVELOPMENT_SECRET_SETTING, randomBytes(32).toString("base64url"));
}

/** How often a start tries to elect a key when other instances keep replacing the current one. */
const ELECTION_ATTEMPTS = 3;

/**
 * Generates a key for the configured algorithm and stores it as the current one in place of
 * `replacing` (`null`: none), retiring every other key. Returns `null` when another instance
 * changed the current key first.
 */
async function storeNewKey(
  options: KeyRingOptions,
  algorithm: Exclude<SigningAlgorithm, "HS256">,
  sealingKey: Buffer,
  encryption: KeyEncryption,
  replacing: SigningKeyRecord | null,
  now = options.clock.now(),
): Promise<SigningKey | null> {
  const key = generateSigningKey(algorithm);
  const stored = await options.store.replaceCurrentSigningKey(
    newKeyRecord(key, sealingKey, encryption, now, now),
    replacing?.kid ?? null,
  );
  if (!stored) return null;
  if (replacing?.encryption === "development" && encryption === "secret") {
    options.logger.warn({ kid: replacing.kid }, "retired a signing key sealed in development mode");
  } else if (replacing && replacing.alg !== algorithm) {
    options.logger.info(
      { kid: replacing.kid, alg: replacing.alg },
      `retired the signing key: the algorithm is now ${algorithm}`,
    );
  }
  return key;
}

function newKeyRecord(
  key: SigningKey,
  sealingKey: Buffer,
  encryption: KeyEncryption,
  createdAt: Date,
  activatesAt: Date,
): NewSigningKey {
  return {
    kid: key.kid,
    alg: key.alg,
    publicKey: JSON.stringify(key.publicJwk),
    privateKeySealed: seal(sealingKey, key.privateKey as string, key.kid),
    encryption,
    createdAt,
    activatesAt,
  };
}

const currentOf = (records: readonly SigningKeyRecord[]) =>
  records.find((record) => record.state === "current") ?? null;
const nextOf = (records: readonly SigningKeyRecord[]) => records.find((record) => record.state === "next") ?? null;

/** A change the schedule or a rotation made, for the audit trail. */
export type KeyEvent =
  | { readonly type: "key_created"; readonly kid: string; readonly alg: string; readonly activatesAt: Date }
  | {
      readonly type: "key_rotated";
      readonly kid: string;
      readonly previousKid: string | null;
      readonly immediately: boolean;
    }
  | { readonly type: "key_retired"; readonly kid: string; readonly publishedUntil: Date };

/** Retired keys are deleted this long after they left the JWK Set; `tessera keys list` shows them until then. */
export const RETIRED_KEY_KEEP_SECONDS = 86400;

/**
 * Publishes a `next` key of the configured algorithm to sign from `activatesAt`, unless another
 * instance published one first. Returns its event, or `null` when another won.
 */
async function prepareNextKey(options: KeyRingOptions, activatesAt: Date): Promise<KeyEvent | null> {
  const { algorithm, store, clock, logger } = options;
  if (algorithm === "HS256") return null;
  const { secret, encryption } = await serverSecret(options, await store.listSigningKeys());
  const key = generateSigningKey(algorithm);
  const record = newKeyRecord(key, deriveKey(secret, ENCRYPTION_PURPOSE), encryption, clock.now(), activatesAt);
  if (!(await store.insertNextSigningKey(record))) return null;
  logger.info({ kid: key.kid, alg: key.alg, activatesAt: activatesAt.toISOString() }, "published the next signing key");
  return { type: "key_created", kid: key.kid, alg: key.alg, activatesAt };
}

/**
 * Moves the signing-key schedule on, as every serving instance does on its reload timer: promotes
 * the `next` key once its time has come, publishes a `next` key one publication lead before the
 * current key is due for rotation, and deletes keys retired long ago. Each write is conditional,
 * so instances doing this at once change the schedule once. Returns what this call changed.
 */
export async function advanceKeySchedule(options: KeyRingOptions): Promise<KeyEvent[]> {
  const { store, algorithm, clock, logger } = options;
  if (algorithm === "HS256") return [];
  const records = await store.listSigningKeys();
  const current = currentOf(records);
  const next = nextOf(records);
  const now = clock.now();
  const events: KeyEvent[] = [];
  // An instance whose settings no longer match the current key's prepares nothing of its own.
  const suits =
    current !== null &&
    current.alg === algorithm &&
    (options.secret === null) === (current.encryption === "development");
  const step = keyScheduleStep({
    now,
    current: current && { kid: current.kid, activatedAt: current.activatesAt },
    next: next && { kid: next.kid, activatesAt: next.activatesAt },
    rotationSeconds: suits ? options.rotationSeconds : null,
    publicationLeadSeconds: options.publicationLeadSeconds,
  });
  if (step.action === "promote") {
    if (await store.promoteNextSigningKey(step.nextKid, step.currentKid, now)) {
      logger.info({ kid: step.nextKid, previousKid: step.currentKid }, "the next signing key is now current");
      events.push({ type: "key_rotated", kid: step.nextKid, previousKid: step.currentKid, immediately: false });
      if (step.currentKid !== null) {
        const publishedUntil = addSeconds(now, options.retiredKeyGraceSeconds);
        events.push({ type: "key_retired", kid: step.currentKid, publishedUntil });
      }
    }
  } else if (step.action === "prepare") {
    const created = await prepareNextKey(options, step.activatesAt);
    if (created) events.push(created);
  }
  const forgotten = addSeconds(now, -(options.retiredKeyGraceSeconds + RETIRED_KEY_KEEP_SECONDS));
  if (records.some((record) => record.retiredAt !== null && record.retiredAt < forgotten)) {
    await store.deleteRetiredSigningKeys(forgotten);
  }
  return events;
}

/** What {@link rotateSigningKey} did: the key that signs next, and the changes made. */
export interface Rotation {
  readonly kid: string;
  /** When the key signs (now, for an immediate rotation). */
  readonly activatesAt: Date;
  readonly events: readonly KeyEvent[];
}

/**
 * Starts a rotation now. By default a `next` key is published to sign one publication lead from
 * now (an already published `next` key is kept, and returned); `immediately` makes a new key
 * current at once, retiring the current and any next key: verifiers holding a cached JWK Set
 * then refetch it on the first token they don't know. On a database without a current key the
 * new key is current at once. Throws `TypeError` for HS256,
 * `signing_key_unavailable` when other instances keep replacing the key meanwhile.
 */
export async function rotateSigningKey(options: KeyRingOptions, immediately: boolean): Promise<Rotation> {
  const { algorithm, store, logger, clock } = options;
  if (algorithm === "HS256") throw new TypeError("HS256 signs with TESSERA_HS256_SECRET; rotate that secret instead");
  for (let attempt = 0; attempt < ELECTION_ATTEMPTS; attempt += 1) {
    const records = await store.listSigningKeys();
    const pending = nextOf(records);
    const current = currentOf(records);
    // With no current key nothing signs yet, and no verifier has cached anything to wait for.
    if (!immediately && current !== null) {
      if (pending) return { kid: pending.kid, activatesAt: pending.activatesAt, events: [] };
      const activatesAt = addSeconds(clock.now(), options.publicationLeadSeconds);
      const created = await prepareNextKey(options, activatesAt);
      if (created) return { kid: created.kid, activatesAt, events: [created] };
      continue;
    }
    const { secret, encryption } = await serverSecret(options, records);
    const sealingKey = deriveKey(secret, ENCRYPTION_PURPOSE);
    const now = clock.now();
    const key = await storeNewKey(options, algorithm, sealingKey, encryption, current, now);
    if (key) {
      logger.info({ kid: key.kid, alg: key.alg }, "a new signing key signs from now on");
      const publishedUntil = addSeconds(now, options.retiredKeyGraceSeconds);
      const events: KeyEvent[] = [
        { type: "key_created", kid: key.kid, alg: key.alg, activatesAt: now },
        ...(current
          ? [{ type: "key_rotated", kid: key.kid, previousKid: current.kid, immediately: true } as const]
          : []),
        ...[current, pending].flatMap((old): KeyEvent[] =>
          old ? [{ type: "key_retired", kid: old.kid, publishedUntil }] : [],
        ),
      ];
      return { kid: key.kid, activatesAt: now, events };
    }
  }
  throw new TesseraError("signing_key_unavailable", "other instances kept replacing the signing key; try again");
}

/** How {@link loadKeyRing} treats a current key that does not suit this instance, or none. */
export type KeyRingLoad =
  /**
   * Starting to serve: store a key of the configured algorithm as the current one (first start
   * elects it); `onEvent` hears of the changes this instance made.
   */
  | { readonly elect: true; readonly onEvent?: (event: KeyEvent) => void }
  /** Only reading (a reload, a CLI command): keep signing with `inUse`, or with nothing. */
  | { readonly elect: false; readonly inUse: SigningKey | null };

/**
 * Loads the signing keys from the store. A start (`{ elect: true }`) makes a key of the
 * configured algorithm and secret the current one unless it already is: the first start on an
 * empty database elects one key for every instance, and a change of algorithm or a newly set
 * secret retires the previous key, published for `retiredKeyGraceSeconds` more. Throws
 * `signing_key_unavailable` when stored keys cannot be decrypted with the secret given.
 */
export async function loadKeyRing(options: KeyRingOptions, load: KeyRingLoad): Promise<KeyRing> {
  const { store, algorithm, clock, logger } = options;
  let records = await store.listSigningKeys();
  const { secret, encryption } = await serverSecret(options, records);
  const rotationKey = deriveKey(secret, ROTATION_PURPOSE);
  const now = clock.now();
  if (algorithm === "HS256") {
    if (!options.hs256Secret) throw new TypeError("hs256Secret is required for HS256");
    // A change to HS256 retires the asymmetric key too; HS256 publishes no keys.
    if (load.elect) {
      for (const record of records) if (record.retiredAt === null) await store.retireSigningKey(record.kid, now);
    }
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
  const suits = (record: SigningKeyRecord | null): boolean =>
    record !== null && record.alg === algorithm && record.encryption === encryption;
  for (let attempt = 0; load.elect && !suits(currentOf(records)); attempt += 1) {
    if (attempt === ELECTION_ATTEMPTS) {
      throw new TesseraError("signing_key_unavailable", "other instances kept replacing the signing key");
    }
    const replacing = currentOf(records);
    const now = clock.now();
    const key = await storeNewKey(options, algorithm, sealingKey, encryption, replacing, now);
    if (key) {
      logger.info({ kid: key.kid, alg: key.alg }, "created a signing key");
      const publishedUntil = addSeconds(now, options.retiredKeyGraceSeconds);
      load.onEvent?.({ type: "key_created", kid: key.kid, alg: key.alg, activatesAt: now });
      if (replacing)
        load.onEvent?.({ type: "key_rotated", kid: key.kid, previousKid: replacing.kid, immediately: true });
      for (const old of [replacing, nextOf(records)]) {
        if (old) load.onEvent?.({ type: "key_retired", kid: old.kid, publishedUntil });
      }
    }
    // Whether this instance won or lost, everyone signs with what the store now holds.
    records = await store.listSigningKeys();
  }
  // Keys that earlier versions stored beside the current one; keys are now only stored as current.
  const superseded = records.filter((record) => record.retiredAt === null && record.state === "retired");
  for (const record of superseded) await store.retireSigningKey(record.kid, now);
  if (superseded.length > 0) records = await store.listSigningKeys();

  const verifyUntil = addSeconds(now, -options.retiredKeyGraceSeconds);
  const published = records
    .filter((record) => record.retiredAt === null || record.retiredAt > verifyUntil)
    .map(verificationKeyOf);
  const current = currentOf(records);
  let signingKey: SigningKey | null;
  if (current && suits(current)) {
    signingKey = signingKeyFromPem(algorithm, open(sealingKey, current.privateKeySealed, current.kid));
  } else {
    // Until restarted with the others' settings, this instance signs with its retired key, but
    // only while that key is still published: once it has left the JWK Set its tokens would be
    // refused everywhere, so signing stops (`signing_key_unavailable`, 503) instead.
    const inUse = load.elect ? null : load.inUse;
    signingKey = inUse !== null && published.some(({ key }) => key.kid === inUse.kid) ? inUse : null;
    if (signingKey) {
      logger.warn(
        { kid: current?.kid ?? null, alg: current?.alg ?? null },
        "the current signing key suits another algorithm or secret: this instance signs with its retired key " +
          "until restarted with the settings of the others",
      );
    } else if (inUse !== null) {
      logger.error(
        { kid: current?.kid ?? null, alg: current?.alg ?? null },
        "this instance's retired signing key is no longer published and no current key suits its settings: " +
          "it signs nothing until restarted with the settings of the others",
      );
    }
  }

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
