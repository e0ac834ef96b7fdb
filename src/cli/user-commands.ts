import { createInterface } from "node:readline/promises";
import { OPERATOR } from "../service/admin-service.js";
import type { TesseraServices } from "../service/tessera-services.js";
import type { AccountDetailsView, AccountView, ListedAccountView, SessionView } from "../service/views.js";

/** Flags the `user` and `sessions` commands read. */
export interface UserCommandFlags {
  readonly json?: boolean;
  readonly yes?: boolean;
  /** Disable, delete or take `admin` from the last enabled admin too. */
  readonly force?: boolean;
  readonly roles?: string;
  readonly search?: string;
  readonly role?: string;
  readonly disabled?: string;
  readonly limit?: string;
  readonly cursor?: string;
}

/** Runs work over the configured services, then closes them. */
export type WithServices = <T>(work: (services: TesseraServices) => Promise<T>) => Promise<T>;

const USAGE: ReadonlyArray<readonly [string, string]> = [
  [
    "user add <username> [--roles r1,r2]",
    "Create an account; the password is prompted for, or read from standard input",
  ],
  [
    "user list [--search text] [--role r] [--disabled true|false] [--limit N] [--cursor c]",
    "List users, a page at a time",
  ],
  ["user show <username>", "Show a user, whether TOTP is on, and how many sessions are open"],
  [
    "user disable <username> [--force]",
    "Disable a user and revoke every session; --force also for the last enabled admin",
  ],
  ["user enable <username>", "Enable a disabled user"],
  [
    "user set-roles <username> <r1,r2> [--force]",
    "Replace a user's roles (`user set-roles alice admin` makes the first admin); --force to take the last admin's",
  ],
  ["user set-password <username>", "Set a password (prompted for, or from standard input); revokes every session"],
  [
    "user reset-mfa <username> [--yes]",
    "Turn TOTP off (recovery codes too), revoke every session; asks on a terminal, else needs --yes",
  ],
  [
    "user delete <username> [--yes] [--force]",
    "Delete a user and their sessions; asks on a terminal, else needs --yes; --force for the last enabled admin",
  ],
  ["sessions list <username>", "List a user's open sessions"],
  ["sessions revoke <session-id>", "Revoke one session"],
  ["sessions revoke-all <username>", "Revoke every session of a user"],
];

/** The usage lines of the `user` and `sessions` commands, in the column layout of `tessera --help`. */
export const USER_COMMANDS_USAGE = [
  ...USAGE.map(([command, text]) =>
    command.length < 32 ? `  ${command.padEnd(33)}${text}` : `  ${command}\n${" ".repeat(35)}${text}`,
  ),
  `${" ".repeat(35)}(user and sessions commands print for people; --json prints JSON)`,
].join("\n");

function required(value: string | undefined, usage: string): string {
  if (value === undefined || value === "") throw new TypeError(`usage: ${usage}`);
  return value;
}

function roleList(text: string): string[] {
  return text
    .split(",")
    .map((role) => role.trim())
    .filter(Boolean);
}

// Characters typed past the end of a line, kept for the next prompt.
let typedAhead = "";

/** Reads a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = "";
      const take = (chunk: string): boolean => {
        const chars = [...chunk];
        for (const [i, char] of chars.entries()) {
          if (char === "\r" || char === "\n" || char === "\u0004") {
            typedAhead = chars
              .slice(i + 1)
              .join("")
              .replace(/^\n/, "");
            resolve(text);
            return true;
          }
          if (char === "\u0003") {
            reject(new TypeError("cancelled"));
            return true;
          }
          text = char === "\u007f" || char === "\b" ? [...text].slice(0, -1).join("") : text + char;
        }
        return false;
      };
      const ahead = typedAhead;
      typedAhead = "";
      if (take(ahead)) return;
      const onData = (chunk: string) => {
        if (take(chunk)) stdin.off("data", onData);
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}

/**
 * The new password: prompted for twice without echo on a terminal, otherwise all of standard
 * input (one trailing newline dropped). Never an argument: arguments show in `ps` and shell history.
 */
async function readNewPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    const password = await promptHidden("New password: ");
    if ((await promptHidden("Repeat it: ")) !== password) throw new TypeError("the passwords differ; nothing changed");
    return password;
  }
  let text = "";
  for await (const chunk of process.stdin) text += String(chunk);
  return text.replace(/\r?\n$/, "");
}

/**
 * Asks on a terminal to type `username` back after `question`; without a terminal, `--yes` must
 * have been given to `tessera user <action>`.
 */
async function confirmWithUsername(action: string, question: string, username: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY)
    throw new TypeError(`tessera user ${action} needs --yes when standard input is not a terminal`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} Type the username to confirm: `);
    if (answer.trim() !== username) throw new TypeError("not confirmed; nothing changed");
  } finally {
    rl.close();
  }
}

function accountText(user: AccountView | AccountDetailsView): string {
  const rows: Array<[string, string]> = [
    ["username", user.username],
    ["id", user.id],
    ["roles", user.roles.join(", ") || "(none)"],
    ["created", user.createdAt.toISOString()],
    ["disabled", user.disabledAt?.toISOString() ?? "no"],
  ];
  if ("mfa" in user) rows.push(["totp", totpText(user)]);
  if ("openSessions" in user) rows.push(["sessions", `${user.openSessions} open`]);
  return rows.map(([name, value]) => `${name.padEnd(9)} ${value}`).join("\n");
}

function totpText(user: ListedAccountView): string {
  return user.mfa.totp ? "on" : "off";
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function sessionsText(sessions: readonly SessionView[]): string {
  if (sessions.length === 0) return "no open sessions";
  return table(
    ["SESSION", "CREATED", "LAST USED", "EXPIRES", "IP", "USER AGENT"],
    sessions.map((session) => [
      session.id,
      session.createdAt.toISOString(),
      session.lastUsedAt.toISOString(),
      session.expiresAt.toISOString(),
      session.ip ?? "-",
      session.userAgent ?? "-",
    ]),
  );
}

function revokedText(revoked: readonly string[]): string {
  return revoked.length === 0
    ? "no session revoked"
    : `revoked ${revoked.length} session${revoked.length === 1 ? "" : "s"}: ${revoked.join(" ")}`;
}

/** Prints `result` as JSON with `--json`, else as `text` says. */
function print<T>(result: T, json: boolean | undefined, text: (result: T) => string): void {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${text(result)}\n`);
}

/** `tessera user <action> …`: the operator's account commands, through `AdminService`. */
export async function userCommand(args: readonly string[], flags: UserCommandFlags, withServices: WithServices) {
  const [action, first, second] = args;
  const json = flags.json;
  const force = flags.force === true;
  if ((action === "add" || action === "set-password") && second !== undefined)
    throw new TypeError(`tessera user ${action} takes no password argument: arguments show in ps and shell history`);
  switch (action) {
    case "add": {
      const username = required(first, "tessera user add <username> [--roles r1,r2]");
      const password = await readNewPassword();
      const roles = flags.roles === undefined ? undefined : roleList(flags.roles);
      const user = await withServices(({ admin }) => admin.createUser(username, password, roles));
      return print(user, json, accountText);
    }
    case "list": {
      if (flags.disabled !== undefined && flags.disabled !== "true" && flags.disabled !== "false")
        throw new TypeError("--disabled must be true or false");
      if (flags.limit !== undefined && !/^\d{1,6}$/.test(flags.limit))
        throw new TypeError("--limit must be a whole number");
      const page = await withServices(({ admin }) =>
        admin.listUsers({
          ...(flags.search === undefined ? {} : { search: flags.search }),
          ...(flags.role === undefined ? {} : { role: flags.role }),
          ...(flags.disabled === undefined ? {} : { disabled: flags.disabled === "true" }),
          ...(flags.limit === undefined ? {} : { limit: Number(flags.limit) }),
          ...(flags.cursor === undefined ? {} : { cursor: flags.cursor }),
        }),
      );
      return print(page, json, ({ users, nextCursor }) => {
        const rows = users.map((user) => [
          user.username,
          user.roles.join(",") || "-",
          user.createdAt.toISOString(),
          user.disabledAt?.toISOString() ?? "-",
          totpText(user),
          user.id,
        ]);
        const listed =
          users.length === 0 ? "no users" : table(["USERNAME", "ROLES", "CREATED", "DISABLED", "TOTP", "ID"], rows);
        return nextCursor === null ? listed : `${listed}\nmore: --cursor ${nextCursor}`;
      });
    }
    case "show": {
      const username = required(first, "tessera user show <username>");
      return print(await withServices(({ admin }) => admin.showUser({ username })), json, accountText);
    }
    case "disable": {
      const username = required(first, "tessera user disable <username> [--force]");
      const user = await withServices(({ admin }) => admin.disableUser({ username }, OPERATOR, { force }));
      return print(user, json, accountText);
    }
    case "enable": {
      const username = required(first, "tessera user enable <username>");
      return print(await withServices(({ admin }) => admin.enableUser({ username })), json, accountText);
    }
    case "set-roles": {
      const username = required(first, "tessera user set-roles <username> <role,role> [--force]");
      const roles = roleList(required(second, "tessera user set-roles <username> <role,role> [--force]"));
      const user = await withServices(({ admin }) => admin.setUserRoles({ username }, roles, OPERATOR, { force }));
      return print(user, json, accountText);
    }
    case "set-password": {
      const username = required(first, "tessera user set-password <username> (password prompted or on standard input)");
      const password = await readNewPassword();
      const revoked = await withServices(({ admin }) => admin.setPassword({ username }, password));
      return print({ revoked }, json, () => `password of ${username} set; ${revokedText(revoked)}`);
    }
    case "reset-mfa": {
      const username = required(first, "tessera user reset-mfa <username> [--yes]");
      const { user, reset } = await withServices(async ({ admin }) => {
        // Looked up first: no confirmation is asked for a name that does not exist.
        const found = await admin.showUser({ username });
        await confirmWithUsername(
          "reset-mfa",
          `Turn off the second factor of ${found.username} and revoke their ${found.openSessions} open sessions?`,
          found.username,
          flags.yes === true,
        );
        return { user: found, reset: await admin.resetMfa({ id: found.id }) };
      });
      return print(reset, json, ({ totpRemoved, revoked }) => {
        const done = totpRemoved ? `TOTP of ${user.username} turned off` : `${user.username} had no TOTP on`;
        return `${done}; ${revokedText(revoked)}`;
      });
    }
    case "delete": {
      const username = required(first, "tessera user delete <username> [--yes] [--force]");
      const user = await withServices(async ({ admin }) => {
        // Looked up first: no confirmation is asked for a name that does not exist.
        const found = await admin.showUser({ username });
        await confirmWithUsername(
          "delete",
          `Delete ${found.username}, their sessions and the addresses in their audit events?`,
          found.username,
          flags.yes === true,
        );
        await admin.deleteUser({ id: found.id }, OPERATOR, { force });
        return found;
      });
      return print({ deleted: user.id }, json, () => `deleted ${user.username} (${user.id})`);
    }
    default:
      throw new TypeError("unknown user command; see tessera --help");
  }
}

/** `tessera sessions <action> …`: a user's sessions, through `AdminService`. */
export async function sessionsCommand(args: readonly string[], flags: UserCommandFlags, withServices: WithServices) {
  const [action, first] = args;
  switch (action) {
    case "list": {
      const username = required(first, "tessera sessions list <username>");
      return print(await withServices(({ admin }) => admin.listUserSessions({ username })), flags.json, sessionsText);
    }
    case "revoke": {
      const sessionId = required(first, "tessera sessions revoke <session-id>");
      const revoked = await withServices(({ admin }) => admin.revokeSession(sessionId));
      return print({ revoked }, flags.json, () => revokedText(revoked));
    }
    case "revoke-all": {
      const username = required(first, "tessera sessions revoke-all <username>");
      const revoked = await withServices(({ admin }) => admin.revokeUserSessions({ username }));
      return print({ revoked }, flags.json, () => revokedText(revoked));
    }
    default:
      throw new TypeError("unknown sessions command; see tessera --help");
  }
}
