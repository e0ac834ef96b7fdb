import { BlockList, isIPv4, isIPv6 } from "node:net";

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

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * True when `host`, an address to listen on or a host name, is this machine's loopback interface:
 * `localhost`, 127.0.0.0/8 or `::1` (also bracketed or IPv4-mapped). `0.0.0.0` and `::` are not.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost") return true;
  if (isIPv4(bare)) return LOOPBACK.check(bare, "ipv4");
  return isIPv6(bare) && LOOPBACK.check(bare, "ipv6");
}
