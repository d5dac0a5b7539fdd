/**
 * `npm run gateway:credentials -- <command>`: the gateway's service credentials
 * (lib/gateway/credentials.ts, docs/gateway.md). Configuration as for `npm start`.
 *
 *   issue --name <name>            a new credential; printed ONCE (only its SHA-256 is stored)
 *   rotate <id> [--grace <secs>]   a new credential with the same name; the old one keeps
 *                                  working for the grace period (default 86400), then is refused
 *   revoke <id>                    refused from now on
 *   list                           ids, names, creation and revocation times (never a secret)
 *
 * Exits 0 on success, 1 when the credential does not exist (or is already revoked, for
 * rotate), 2 when it could not run (arguments, configuration, database).
 */
import { failer, loadConfigOrFail } from "./cli.js";
import { openDatabase, type Database } from "../db/client.js";
import { issueCredential, listCredentials, revokeCredential, rotateCredential } from "../lib/gateway/credentials.js";

const usage = "usage: npm run gateway:credentials -- issue --name <name> | rotate <id> [--grace <seconds>] | revoke <id> | list";
const fail: (message: string) => never = failer("gateway:credentials", 2);

type Command =
  | { kind: "issue"; name: string }
  | { kind: "rotate"; id: string; grace: number }
  | { kind: "revoke"; id: string }
  | { kind: "list" };

const isDigits = (value: string) => value.length > 0 && value.length <= 8 && [...value].every((ch) => ch >= "0" && ch <= "9");
const isId = (value: string) => value.length === 16 && [...value].every((ch) => "0123456789abcdef".includes(ch));

function parseArgs(argv: readonly string[]): Command {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h") {
    process.stdout.write(`${usage}\n`);
    process.exit(command === undefined ? 2 : 0);
  }
  if (command === "list" && rest.length === 0) return { kind: "list" };
  if (command === "issue") {
    const name = rest[0] === "--name" ? rest[1] : undefined;
    if (!name || rest.length !== 2 || name.length > 100) fail(`issue needs --name <name> (at most 100 characters); ${usage}`);
    return { kind: "issue", name };
  }
  const id = rest[0];
  if ((command === "rotate" || command === "revoke") && id !== undefined && isId(id)) {
    if (command === "revoke" && rest.length === 1) return { kind: "revoke", id };
    if (command === "rotate") {
      if (rest.length === 1) return { kind: "rotate", id, grace: 86_400 };
      if (rest.length === 3 && rest[1] === "--grace" && isDigits(rest[2]!)) return { kind: "rotate", id, grace: Number(rest[2]) };
    }
  }
  fail(`unknown or incomplete command; ${usage}`);
}

async function main(): Promise<void> {
  const command = parseArgs(process.argv.slice(2));
  const config = loadConfigOrFail(fail);
  let database: Database;
  try {
    database = await openDatabase({ driver: config.database.driver, url: config.database.url, pgliteDir: config.database.pgliteDir });
  } catch (error) {
    fail(`could not open the ${config.database.driver} database (${error instanceof Error ? error.name : "error"})`);
  }
  let code = 0;
  try {
    if (command.kind === "issue") {
      const issued = await issueCredential(database, command.name);
      process.stdout.write(
        `issued ${issued.view.id} (${issued.view.name}). The credential, shown this once (store it as a secret of the backend that calls the gateway):\n${issued.credential}\n`,
      );
    } else if (command.kind === "rotate") {
      const rotated = await rotateCredential(database, command.id, command.grace);
      if (!rotated) {
        process.stderr.write(`gateway:credentials: no credential ${command.id} in force\n`);
        code = 1;
      } else {
        process.stdout.write(
          `rotated ${rotated.old.id} → ${rotated.view.id}; ${rotated.old.id} is refused from ${rotated.old.revokedAt}. The new credential, shown this once:\n${rotated.credential}\n`,
        );
      }
    } else if (command.kind === "revoke") {
      const revoked = await revokeCredential(database, command.id);
      if (!revoked) {
        process.stderr.write(`gateway:credentials: no credential ${command.id}\n`);
        code = 1;
      } else process.stdout.write(`revoked ${revoked.id} (${revoked.name}) from ${revoked.revokedAt}\n`);
    } else {
      for (const c of await listCredentials(database)) {
        process.stdout.write(`${c.id}  ${c.name}  created ${c.createdAt}  ${c.revokedAt ? `revoked ${c.revokedAt}` : "in force"}\n`);
      }
    }
  } catch (error) {
    fail(`the database refused the command (${error instanceof Error ? error.name : "error"}); run npm run db:migrate first`);
  } finally {
    await database.close().catch(() => undefined);
  }
  process.exit(code);
}

await main();
