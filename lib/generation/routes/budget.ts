/** /api/usage/budget — the caller's monthly spending cap: what it is, what is spent and left, and setting it. */
import { defineRoute, json } from "../../http/route.js";
import { budgetStatus, setMonthlyCap } from "../budget.js";
import { budgetBody, budgetResponse } from "../schemas.js";

const path = "/api/usage/budget";
const budgetJson = { "application/json": { schema: budgetResponse } };

export const getBudget = defineRoute({
  method: "GET",
  path,
  operationId: "getBudget",
  summary: "The caller's monthly spending cap",
  description:
    "The cap in force (the caller's own, or the operator's default; null: none), what the caller's keys were charged this " +
    "UTC month, what generations in flight have reserved, what is left, and when the month resets. A generation whose " +
    "worst-case cost does not fit answers 402 `budget-exceeded` before any upstream call.",
  tags: ["usage"],
  auth: true,
  responses: { 200: { description: "The budget.", content: budgetJson, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId }) => json(await budgetStatus(await deps.database(), deps.config, userId)),
});

export const setBudget = defineRoute({
  method: "PUT",
  path,
  operationId: "setBudget",
  summary: "Set the caller's monthly spending cap",
  description:
    "`monthlyUsd`: the cap in USD per UTC month, or null for none. The operator may set a maximum (BUDGET_MAX_USD): a larger " +
    "cap, or none, is refused with 400. Lowering the cap below this month's spend stops further generations until the month resets.",
  tags: ["usage"],
  auth: true,
  body: { schema: budgetBody, description: "The new cap (USD per month), or null for none.", example: { monthlyUsd: 5 } },
  responses: { 200: { description: "The budget with its new cap.", content: budgetJson, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId, body }) => {
    const status = await setMonthlyCap(await deps.database(), deps.config, userId, body.monthlyUsd);
    deps.logger.info("budget set", { userId, monthlyUsd: status.monthlyUsd });
    return json(status);
  },
});

export default [getBudget, setBudget];
