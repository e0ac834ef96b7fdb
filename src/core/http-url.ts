/**
 * `value` parsed, if it is an absolute `http:` or `https:` URL given as a string or a `URL`.
 * Throws `TypeError` naming the option `name` otherwise.
 */
export function parseHttpUrl(value: unknown, name: string): URL {
  let url: URL | null = null;
  if (typeof value === "string" || value instanceof URL) {
    try {
      url = new URL(value instanceof URL ? value.href : value);
    } catch {
      url = null;
    }
  }
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:"))
    throw new TypeError(`${name} must be an absolute http(s) URL`);
  return url;
}
