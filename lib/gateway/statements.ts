/**
 * The gateway's two statements per call (lib/gateway/start.ts before the upstream call, the
 * settlement in lib/gateway/proxy.ts after it) as named prepared statements, when the database
 * uses them (`namedStatements`: node-postgres by default, lib/platform/env.ts). Each is a few
 * kilobytes of SQL (several CTEs: the credential, the rate limit, the key, the reservation,
 * the audit row); PostgreSQL parsing and planning it again on every call cost more than
 * running it (bench/gateway.ts; docs/gateway.md "Round trips and added latency"). Named, each
 * shape is parsed once per connection and its plan kept. The text and the parameters are the
 * ones the unnamed statement would send, and it is still one round trip (node-postgres sends
 * Parse, Bind, Execute and Sync together the first time a connection meets a name).
 *
 * A name stands for one text, for the life of the process: the first MAX_NAMED distinct texts
 * get one each (the gateway builds a handful of shapes: caller kind, rate limit on or off,
 * reserving or not, a usage row and a key health update or not); any later text runs
 * unnamed, so shapes can never pile up prepared statements on a connection.
 */
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Database } from "../../db/client.js";

const MAX_NAMED = 64;
const names = new Map<string, string>();
const dialect = new PgDialect();
const prepared = new WeakMap<Database, Database>();

/** The name of the statement `text` (`byok_gw_<n>`), or undefined when MAX_NAMED are taken. */
export function statementName(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED) {
    name = `byok_gw_${names.size + 1}`;
    names.set(text, name);
  }
  return name;
}

/** `database`, its `rows` running named statements (see above); `database` itself when it does not use them. */
export function withNamedStatements(database: Database): Database {
  if (!database.namedStatements) return database;
  let named = prepared.get(database);
  if (!named) {
    named = {
      ...database,
      async rows<T>(query: SQL): Promise<T[]> {
        const built = dialect.sqlToQuery(query);
        const name = statementName(built.sql);
        if (name === undefined) return database.rows<T>(query);
        const result = (await database.db._.session.prepareQuery(built, undefined, name, false).execute()) as { rows?: T[] } | T[];
        return Array.isArray(result) ? result : (result.rows ?? []);
      },
    };
    prepared.set(database, named);
  }
  return named;
}
