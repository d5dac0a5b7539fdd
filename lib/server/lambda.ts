/**
 * AWS Lambda adapter: the one app (`lib/app.ts`) over every route, behind Hono's
 * `hono/aws-lambda` event conversion. Two entry points, pick one per function:
 *
 * - `handler` (buffered): API Gateway HTTP API (payload v2), REST API (v1), ALB, or a
 *   Function URL with invoke mode BUFFERED. The whole response is collected first, so
 *   `POST /api/blog/generate` arrives as one block (clients can send
 *   `Accept: application/json` instead of reading Server-Sent Events). Mind API Gateway's
 *   30-second integration timeout for generation.
 * - `streamingHandler` (response streaming): a Function URL with invoke mode RESPONSE_STREAM.
 *   Bytes reach the client as the endpoint produces them, so generation streams its events.
 *   This is the one to deploy when the frontend uses generation.
 *
 * Both serve every route; on Lambda the runtime comes from the process environment
 * (`AWS_LAMBDA_FUNCTION_NAME` makes it production). Build with `scripts/build-lambda.ts`
 * (one ESM file, `dist/lambda/index.mjs`); handler names are `index.handler` and
 * `index.streamingHandler`. Set `DATABASE_URL` (PGlite on Lambda lives and dies with one
 * instance), `CLERK_JWT_KEY` and `KEY_ENCRYPTION_KEYS`, and migrate the database before the
 * first deploy (`npm run db:migrate` with the same `DATABASE_URL`).
 *
 * Lambda does not tell a streaming function when its client disconnects
 * (aws-lambda-nodejs-runtime-interface-client#145), so on Lambda an abandoned generation
 * runs on until it finishes or its upstream timeouts fire.
 */
import type { Writable } from "node:stream";
import { handle, streamHandle, type APIGatewayProxyResult, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { createApp, type RuntimeSource } from "../app.js";
import type { AnyRoute } from "../http/route.js";
import { routes as allRoutes } from "../routes.js";

/** A buffered Lambda handler: an API Gateway / ALB / Function URL event in, a proxy result out. */
export type LambdaHandler = (event: LambdaEvent, context?: LambdaContext) => Promise<APIGatewayProxyResult>;

/** What `awslambda.streamifyResponse` returns: Lambda calls it with a response stream. */
export type LambdaStreamingHandler = (event: LambdaEvent, responseStream: Writable, context?: LambdaContext) => Promise<void>;

/** The part of the Node.js Lambda runtime's `awslambda` global that response streaming uses. */
export interface AwsLambdaGlobal {
  streamifyResponse(handler: LambdaStreamingHandler): LambdaStreamingHandler;
  HttpResponseStream: { from(stream: Writable, metadata: Record<string, unknown>): Writable };
}

declare global {
  // Defined by the Lambda Node.js runtime before it loads the handler module. `var`: only a
  // var declaration adds a property to globalThis's type (let and const do not).
  var awslambda: AwsLambdaGlobal | undefined;
}

/** What the two adapters pass: the buffered one names the context `lambdaContext`, the streaming one `context`. */
type LambdaBindings = { event?: LambdaEvent; lambdaContext?: LambdaContext; context?: LambdaContext };

/** Responses that are text (JSON, problem+json, Server-Sent Events) travel as text, anything else base64. */
function isContentTypeBinary(contentType: string): boolean {
  return !/^text\/|[/+](json|xml)\s*(;|$)/i.test(contentType);
}

/**
 * An HTTP API (v2) stage other than `$default` prefixes rawPath with `/<stage>`; the routes
 * know only the public paths, so strip it.
 */
function withoutStagePrefix(request: Request, event: LambdaEvent | undefined): Request {
  const stage = (event?.requestContext as { stage?: unknown } | undefined)?.stage;
  if (!event || !("rawPath" in event) || typeof stage !== "string" || stage === "$default" || stage === "") return request;
  const url = new URL(request.url);
  const prefix = `/${stage}`;
  if (url.pathname !== prefix && !url.pathname.startsWith(prefix + "/")) return request;
  url.pathname = url.pathname.slice(prefix.length) || "/";
  return new Request(url, request);
}

/** The app as the Hono adapters call it, with the stage prefix removed. */
function lambdaApp(source: RuntimeSource | undefined, routes: readonly AnyRoute[]) {
  const app = createApp(routes, { runtime: source });
  return {
    fetch: (request: Request, env: LambdaBindings) => {
      // Pooled database connections keep the event loop busy; answer without waiting for them.
      const lambdaContext = env?.lambdaContext ?? env?.context;
      if (lambdaContext) lambdaContext.callbackWaitsForEmptyEventLoop = false;
      return app.fetch(withoutStagePrefix(request, env?.event), env);
    },
  } as unknown as Parameters<typeof handle>[0];
}

/**
 * A buffered Lambda handler over the app (tests pass their own runtime; the exported
 * `handler` uses the process environment). `routes` is for tests.
 */
export function createLambdaHandler(source?: RuntimeSource, routes: readonly AnyRoute[] = allRoutes): LambdaHandler {
  const inner = handle(lambdaApp(source, routes), { isContentTypeBinary });
  return (event, context) => inner(event, context) as Promise<APIGatewayProxyResult>;
}

/**
 * A response-streaming Lambda handler (Function URL, invoke mode RESPONSE_STREAM). Needs the
 * `awslambda` global the Lambda Node.js runtime defines; throws without it.
 */
export function createLambdaStreamingHandler(source?: RuntimeSource, routes: readonly AnyRoute[] = allRoutes): LambdaStreamingHandler {
  if (typeof globalThis.awslambda?.streamifyResponse !== "function") {
    throw new Error("response streaming needs the awslambda global of the AWS Lambda Node.js runtime");
  }
  return streamHandle(lambdaApp(source, routes)) as unknown as LambdaStreamingHandler;
}

/** Buffered entry point (`index.handler`): API Gateway, ALB or a BUFFERED Function URL. */
export const handler: LambdaHandler = createLambdaHandler();

/**
 * Streaming entry point (`index.streamingHandler`) for a RESPONSE_STREAM Function URL. Lambda
 * recognises a streaming handler by the mark `awslambda.streamifyResponse` puts on it, so it
 * is built when the module loads; outside Lambda (no `awslambda` global) it is undefined.
 */
export const streamingHandler: LambdaStreamingHandler | undefined =
  typeof globalThis.awslambda?.streamifyResponse === "function" ? createLambdaStreamingHandler() : undefined;
