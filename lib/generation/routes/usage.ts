/** GET /api/usage?from=&to= — what the caller's own keys paid for, per provider and per day. */
import { defineRoute, json } from "../../http/route.js";
import { usageQuery, usageResponse } from "../schemas.js";
import { sql } from "drizzle-orm";
import { toUsageSummary, usageSummarySql, type UsageSummaryRow } from "../usage.js";
import { budgetStatusSql, toBudgetStatus, type BudgetStatusRow } from "../budget.js";

export const getUsage = defineRoute({
  method: "GET",
  path: "/api/usage",
  operationId: "getUsage",
  summary: "What the caller's keys paid for",
  description:
    "Totals per provider and a daily breakdown for `from`..`to` (ISO dates `YYYY-MM-DD`, a date-only `to` includes that day, " +
    "or ISO instants). Defaults: the last 30 days; at most 366 days. `budget` is this month's cap, spend and what is left " +
    "(as GET /api/usage/budget).",
  tags: ["usage"],
  auth: true,
  query: { schema: usageQuery, example: { from: "2026-01-01", to: "2026-01-31" } },
  responses: {
    200: { description: "Usage in the range.", content: { "application/json": { schema: usageResponse } }, headers: ["Cache-Control"] },
  },
  problems: ["invalid-request"],
  handler: async ({ deps, userId, query }) => {
    const database = await deps.database();
    // One statement (one round trip): the budget row with the usage rows as JSON beside it.
    const [row] = await database.rows<BudgetStatusRow & { usage_rows: UsageSummaryRow[] | string | null }>(sql`
      select bs.*, (select coalesce(json_agg(u order by u.day, u.provider), '[]'::json) from (${usageSummarySql(userId, query)}) u) as usage_rows
      from (${budgetStatusSql(deps.config, userId)}) bs
    `);
    const usageRows = typeof row?.usage_rows === "string" ? (JSON.parse(row.usage_rows) as UsageSummaryRow[]) : (row?.usage_rows ?? []);
    return json({ ...toUsageSummary(userId, query, usageRows), budget: toBudgetStatus(deps.config, userId, row) });
  },
});

export default [getUsage];
