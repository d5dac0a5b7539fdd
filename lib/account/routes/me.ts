/** /api/me and /api/me/export — the caller's whole account: delete it all, or export it all. */
import { defineRoute, json, noContent } from "../../http/route.js";
import { accountExport } from "../schemas.js";
import { deleteOwnAccount, exportAccountData } from "../account.js";

export const deleteMe = defineRoute({
  method: "DELETE",
  path: "/api/me",
  operationId: "deleteMe",
  summary: "Delete everything held about the caller",
  description:
    "The caller's keys, onboarding session, usage, rate-limit and budget rows and key audit events are deleted together; one " +
    "`account-delete` audit event (no key material) remains. In development the keys are also removed from the .env files. " +
    "Deleting the user in Clerk (with the webhook registered) does the same.",
  tags: ["account"],
  auth: true,
  responses: { 204: { description: "Deleted (also when there was nothing to delete).", headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId }) => {
    await deleteOwnAccount(deps, userId);
    return noContent();
  },
});

export const exportMe = defineRoute({
  method: "GET",
  path: "/api/me/export",
  operationId: "exportMe",
  summary: "Everything held about the caller, as JSON",
  description:
    "Onboarding session, each saved key's hint and health, the budget, every usage row, every key audit event and the " +
    "rate-limit windows. Never a key or a ciphertext (the publishable CopilotKit key included).",
  tags: ["account"],
  auth: true,
  responses: {
    200: { description: "The caller's data.", content: { "application/json": { schema: accountExport } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId }) => {
    return json(await exportAccountData(deps, userId));
  },
});

/** What api/me.ts serves (Vercel routes /api/me there). */
export const accountRoutes = [deleteMe];
/** What api/me/export.ts serves. */
export const exportRoutes = [exportMe];

export default [deleteMe, exportMe];
