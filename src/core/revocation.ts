/**
 * The Redis channel on which the server publishes revocations as
 * `{"sids":[…],"revoked_at":<unix s>}` and `tessera/verify` listens.
 */
export const REVOCATION_CHANNEL = "tessera:revocations";
