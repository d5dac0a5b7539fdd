/**
 * ALwrity's integrations step (step 5) asks Google Search Console and WordPress whether they are
 * connected when it opens. This service integrates no publishing platform: it answers "not
 * connected", so the step shows its Connect buttons and its Continue (optional step) works.
 * Connecting is not offered (those calls stay 404). No database, no upstream, nothing about any
 * user: no authentication needed (ALwrity sends its token anyway).
 */
import { defineRoute, json } from "../../../http/route.js";
import { integrationClearResponse, integrationStatusResponse } from "../schemas.js";

const notConnected = (name: string) => ({
  connected: false as const,
  sites: [] as Record<string, never>[],
  total_sites: 0 as const,
  message: `${name} is not integrated by this service: skip this step`,
});

const statusRoute = (path: string, alias: string, operationId: string, name: string) =>
  defineRoute({
    method: "GET",
    path,
    aliases: [alias],
    operationId,
    summary: `${name} connection status (not integrated: never connected; no /api prefix)`,
    tags: ["alwrity"],
    auth: false,
    responses: {
      200: {
        description: "Not connected.",
        content: { "application/json": { schema: integrationStatusResponse } },
        headers: ["Cache-Control"],
      },
    },
    problems: [],
    handler: async () => json(notConnected(name)),
  });

export const alwrityGscStatus = statusRoute("/gsc/status", "/api/alwrity/gsc/status", "alwrityGscStatus", "Google Search Console");
export const alwrityWordPressStatus = statusRoute("/wp/status", "/api/alwrity/wp/status", "alwrityWordPressStatus", "WordPress");

export const alwrityGscClearIncomplete = defineRoute({
  method: "POST",
  path: "/gsc/clear-incomplete",
  aliases: ["/api/alwrity/gsc/clear-incomplete"],
  operationId: "alwrityGscClearIncomplete",
  summary: "Clear an incomplete Google Search Console connection (there is none: nothing to do)",
  tags: ["alwrity"],
  auth: false,
  responses: {
    200: {
      description: "Nothing to clear.",
      content: { "application/json": { schema: integrationClearResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async () => json({ success: true, message: "Google Search Console is not integrated by this service: nothing to clear" }),
});

export default [alwrityGscStatus, alwrityGscClearIncomplete, alwrityWordPressStatus];
