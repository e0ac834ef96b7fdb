/**
 * Reads a response body as UTF-8 text, giving up (and cancelling the transfer) once more than
 * `maxBytes` arrived, so a misbehaving server cannot make the verifier buffer without bound.
 */
export async function readCappedText(response: Response, maxBytes: number, what: string): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new Error(`the ${what} response is too large`);
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
    if (received > maxBytes) {
      await reader.cancel();
      throw new Error(`the ${what} response is too large`);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}
