/**
 * A local stand-in for Neon's SQL-over-HTTP endpoint (what `neonConfig.fetchEndpoint`
 * points at), executing against a real PostgreSQL with node-postgres. It speaks the
 * protocol as @neondatabase/serverless 1.x uses it (read from the driver's `neon()`):
 *
 * request  POST /sql, JSON `{query, params}` or, for `sql.transaction([...])` and Drizzle's
 *          `db.batch`, `{queries: [{query, params}, ...]}`; params are already strings
 *          (or null), bytea as `\x…`. Headers: `Neon-Connection-String` (which database),
 *          `Neon-Raw-Text-Output: true` and `Neon-Array-Mode: true` (always sent by 1.x), and
 *          for batches `Neon-Batch-Isolation-Level` / `-Read-Only` / `-Deferrable`.
 * response 200 `{command, rowCount, rows, fields: [{name, dataTypeID, tableID, columnID,
 *          dataTypeSize, dataTypeModifier, format}], rowAsArray}` with every value as
 *          PostgreSQL's text (or null): the driver parses them by `dataTypeID` with its own
 *          pg-types. Batches answer `{results: [...]}` and run in ONE transaction.
 *          A PostgreSQL error answers 400 with `{message, code, severity, detail, ...}`
 *          (the driver copies those onto its NeonDbError); anything else is a 5xx, which
 *          the driver reports as "Server error (HTTP status N): body".
 *
 * Only hosts in `allowHosts` are connected to (default 127.0.0.1 and localhost).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";

export interface NeonHttpRequestRecord {
  batch: boolean;
  /** SQL text of each query (never the parameters: they can hold ciphertext). */
  queries: string[];
  isolationLevel?: string;
  readOnly?: boolean;
}

export interface NeonHttpEndpoint {
  /** For `neonConfig.fetchEndpoint` (db/client.ts `neon.fetchEndpoint`). */
  readonly fetchEndpoint: string;
  readonly port: number;
  /** Every request served, in order. */
  readonly requests: NeonHttpRequestRecord[];
  /**
   * Answer every request with this HTTP status and Neon-style JSON message instead of running
   * it, like Neon's proxy when the compute cannot be reached (e.g. 500 "Control plane
   * request failed"); `undefined` restores normal service.
   */
  simulateFailure(failure: { status: number; message: string } | undefined): void;
  /** Stops listening, drops open connections and ends the PostgreSQL pools. */
  close(): Promise<void>;
}

interface Statement {
  query: string;
  params?: unknown[];
}

const isolationLevels: Record<string, string> = {
  ReadUncommitted: "read uncommitted",
  ReadCommitted: "read committed",
  RepeatableRead: "repeatable read",
  Serializable: "serializable",
};

/** Every column comes back as PostgreSQL's text, as Neon's raw text output does. */
const rawText = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

const errorFields = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startNeonHttpEndpoint(options: { allowHosts?: string[]; maxConnections?: number } = {}): Promise<NeonHttpEndpoint> {
  const allowHosts = new Set(options.allowHosts ?? ["127.0.0.1", "localhost"]);
  const pools = new Map<string, pg.Pool>();
  const requests: NeonHttpRequestRecord[] = [];
  let failure: { status: number; message: string } | undefined;

  const poolFor = (connectionString: string): pg.Pool => {
    let pool = pools.get(connectionString);
    if (!pool) {
      let url: URL;
      try {
        url = new URL(connectionString);
      } catch {
        throw new HttpProblem(400, "invalid Neon-Connection-String");
      }
      if (!allowHosts.has(url.hostname)) throw new HttpProblem(400, `host ${url.hostname} is not served by this endpoint`);
      pool = new pg.Pool({ connectionString, max: options.maxConnections ?? 10, connectionTimeoutMillis: 5_000 });
      pool.on("error", () => {});
      pools.set(connectionString, pool);
    }
    return pool;
  };

  const run = async (client: pg.PoolClient, statement: Statement, arrayMode: boolean) => {
    if (typeof statement?.query !== "string") throw new HttpProblem(400, "each query needs a `query` string");
    const result = await client.query({
      text: statement.query,
      values: statement.params ?? [],
      rowMode: "array",
      types: rawText,
      // Neon runs every query with the extended protocol: one statement per query.
      queryMode: "extended",
    } as pg.QueryArrayConfig);
    const names = result.fields.map((f) => f.name);
    return {
      command: result.command,
      rowCount: result.rowCount,
      rows: arrayMode ? result.rows : result.rows.map((row) => Object.fromEntries(row.map((value, i) => [names[i], value]))),
      fields: result.fields.map((f) => ({
        name: f.name,
        dataTypeID: f.dataTypeID,
        tableID: f.tableID,
        columnID: f.columnID,
        dataTypeSize: f.dataTypeSize,
        dataTypeModifier: f.dataTypeModifier,
        format: "text",
      })),
      rowAsArray: arrayMode,
    };
  };

  const handle = async (req: IncomingMessage): Promise<unknown> => {
    if (req.method !== "POST" || new URL(req.url ?? "/", "http://x").pathname !== "/sql") throw new HttpProblem(404, "not found");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: { query?: string; params?: unknown[]; queries?: Statement[] };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      throw new HttpProblem(400, "body is not JSON");
    }
    const header = (name: string) => {
      const value = req.headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    };
    const connectionString = header("Neon-Connection-String");
    if (!connectionString) throw new HttpProblem(400, "missing Neon-Connection-String header");
    if (header("Neon-Raw-Text-Output") !== "true") throw new HttpProblem(400, "this endpoint only serves Neon-Raw-Text-Output: true");
    const arrayMode = header("Neon-Array-Mode") === "true";
    const pool = poolFor(connectionString);

    if (Array.isArray(body.queries)) {
      const isolation = header("Neon-Batch-Isolation-Level");
      const readOnly = header("Neon-Batch-Read-Only") === "true";
      const deferrable = header("Neon-Batch-Deferrable") === "true";
      if (isolation !== undefined && !(isolation in isolationLevels)) throw new HttpProblem(400, `invalid isolation level ${isolation}`);
      requests.push({
        batch: true,
        queries: body.queries.map((q) => q?.query),
        ...(isolation ? { isolationLevel: isolation } : {}),
        ...(readOnly ? { readOnly } : {}),
      });
      const client = await pool.connect();
      let broken = false;
      try {
        let begin = "begin";
        if (isolation) begin += ` isolation level ${isolationLevels[isolation]}`;
        if (readOnly) begin += " read only";
        if (deferrable) begin += " deferrable";
        await client.query(begin);
        try {
          const results = [];
          for (const statement of body.queries) results.push(await run(client, statement, arrayMode));
          await client.query("commit");
          return { results };
        } catch (error) {
          await client.query("rollback").catch(() => {
            broken = true;
          });
          throw error;
        }
      } finally {
        client.release(broken);
      }
    }

    if (typeof body.query !== "string") throw new HttpProblem(400, "body needs `query` or `queries`");
    requests.push({ batch: false, queries: [body.query] });
    const client = await pool.connect();
    try {
      return await run(client, { query: body.query, params: body.params ?? [] }, arrayMode);
    } finally {
      client.release();
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => {
    if (failure) {
      req.resume();
      send(res, failure.status, { message: failure.message, code: "" });
      return;
    }
    handle(req).then(
      (body) => send(res, 200, body),
      (error: unknown) => {
        if (error instanceof HttpProblem) return send(res, error.status, { message: error.message, code: "" });
        if (error instanceof pg.DatabaseError) {
          const problem: Record<string, unknown> = { message: error.message };
          for (const field of errorFields) problem[field] = (error as unknown as Record<string, unknown>)[field] ?? null;
          return send(res, 400, problem);
        }
        // PostgreSQL itself unreachable: what Neon says when it cannot reach the compute.
        send(res, 502, { message: "Couldn't connect to compute node", code: "" });
      },
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    fetchEndpoint: `http://127.0.0.1:${port}/sql`,
    port,
    requests,
    simulateFailure(next) {
      failure = next;
    },
    async close() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await Promise.all([...pools.values()].map((pool) => pool.end()));
      pools.clear();
    },
  };
}
