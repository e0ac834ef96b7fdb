import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { TesseraError } from "./errors.js";

/** Derives a 32-byte key for `purpose` from the server secret (HKDF-SHA256, RFC 5869). */
export function deriveKey(secret: string | Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, "tessera", purpose, 32));
}

/** Encrypts `plaintext` with AES-256-GCM under `key`, bound to `context`; returns `v1.<iv>.<ct>.<tag>`. */
export function seal(key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return ["v1", iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
    .join(".");
}

/**
 * Decrypts what {@link seal} produced under the same key and context. Throws
 * `signing_key_unavailable` when the key is wrong or the data was altered.
 */
export function open(key: Buffer, sealed: string, context: string): string {
  const [version, iv, ciphertext, tag] = sealed.split(".");
  try {
    if (version !== "v1" || iv === undefined || ciphertext === undefined || tag === undefined)
      throw new Error("unknown format");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]).toString("utf8");
  } catch (error) {
    throw new TesseraError("signing_key_unavailable", "a stored private key cannot be decrypted with this secret", {
      cause: error,
    });
  }
}
