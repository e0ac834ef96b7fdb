// A network namespace of the test's own, joined to the host by a veth pair on a private
// 10.213.x.0/24 subnet that nothing else on the machine uses. Only addresses inside that
// subnet are ever routed; everything is removed again by destroySync (also at process exit).
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";

function ip(args: readonly string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
}

let probed: string | null | undefined;

/**
 * `null` when this process may create network namespaces (root with `ip netns`), otherwise
 * the reason to skip. Probed once by creating and deleting a namespace.
 */
export function netnsUnavailable(): string | null {
  if (probed !== undefined) return probed;
  const name = `tsrprobe${randomBytes(3).toString("hex")}`;
  const added = spawnSync("ip", ["netns", "add", name], { encoding: "utf8", timeout: 10_000 });
  if (added.status === 0) {
    spawnSync("ip", ["netns", "del", name], { timeout: 10_000 });
    probed = null;
  } else {
    probed = `cannot create a network namespace here (\`ip netns add\`: ${(added.stderr || added.error?.message || "failed").trim()}); the partition test needs root and iproute2`;
  }
  return probed;
}

const live = new Set<NetworkNamespace>();
process.once("exit", () => {
  for (const namespace of live) namespace.destroySync();
});

/**
 * A namespace `ns` with one veth pair: the host end has `hostAddress` and `serviceAddress`, the
 * namespace end `address`. The namespace reaches `serviceAddress` through a /32 route that
 * {@link cutRoute} deletes and {@link restoreRoute} puts back.
 */
export class NetworkNamespace {
  readonly name: string;
  /** The namespace's own address, where its servers listen. */
  readonly address: string;
  /** The host end of the veth pair. */
  readonly hostAddress: string;
  /** A host address reached from the namespace by its own route, for a service to cut off. */
  readonly serviceAddress: string;
  readonly #hostLink: string;
  readonly #nsLink: string;

  private constructor(subnet: number, tag: string) {
    this.name = `tessera-${tag}`;
    this.#hostLink = `tsrh${tag}`;
    this.#nsLink = `tsrn${tag}`;
    this.hostAddress = `10.213.${subnet}.1`;
    this.address = `10.213.${subnet}.2`;
    this.serviceAddress = `10.213.${subnet}.129`;
  }

  /** Creates the namespace on a 10.213.x.0/24 subnet no interface here uses yet. */
  static create(): NetworkNamespace {
    const used = spawnSync("ip", ["-4", "-o", "addr"], { encoding: "utf8" }).stdout;
    const free = Array.from({ length: 256 }, (_, i) => i).filter((subnet) => !used.includes(`10.213.${subnet}.`));
    if (free.length === 0) throw new Error("no free 10.213.x.0/24 subnet");
    const subnet = free[Math.floor(Math.random() * free.length)]!;
    const namespace = new NetworkNamespace(subnet, randomBytes(3).toString("hex"));
    live.add(namespace);
    try {
      const ns = ["netns", "exec", namespace.name, "ip"];
      ip(["netns", "add", namespace.name]);
      ip(["link", "add", namespace.#hostLink, "type", "veth", "peer", "name", namespace.#nsLink]);
      ip(["link", "set", namespace.#nsLink, "netns", namespace.name]);
      ip(["addr", "add", `${namespace.hostAddress}/25`, "dev", namespace.#hostLink]);
      ip(["addr", "add", `${namespace.serviceAddress}/32`, "dev", namespace.#hostLink]);
      ip(["link", "set", namespace.#hostLink, "up"]);
      ip([...ns, "addr", "add", `${namespace.address}/25`, "dev", namespace.#nsLink]);
      ip([...ns, "link", "set", "lo", "up"]);
      ip([...ns, "link", "set", namespace.#nsLink, "up"]);
      namespace.restoreRoute();
      return namespace;
    } catch (error) {
      namespace.destroySync();
      throw error;
    }
  }

  /** Prefix that runs a command inside the namespace. */
  get wrapper(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  /** Deletes the namespace's route to {@link serviceAddress}: from now on it is unreachable from inside. */
  cutRoute(): void {
    ip(["netns", "exec", this.name, "ip", "route", "del", `${this.serviceAddress}/32`]);
  }

  /** Puts the route to {@link serviceAddress} back. */
  restoreRoute(): void {
    ip([
      "netns",
      "exec",
      this.name,
      "ip",
      "route",
      "replace",
      `${this.serviceAddress}/32`,
      "dev",
      this.#nsLink,
      "src",
      this.address,
    ]);
  }

  /** Deletes the namespace and the veth pair (deleting one end deletes both). Safe to call twice. */
  destroySync(): void {
    if (!live.delete(this)) return;
    spawnSync("ip", ["link", "del", this.#hostLink], { stdio: "ignore", timeout: 10_000 });
    spawnSync("ip", ["netns", "del", this.name], { stdio: "ignore", timeout: 10_000 });
  }
}
