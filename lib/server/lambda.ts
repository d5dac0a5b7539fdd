/**
 * AWS Lambda adapter: the same route table as the local server (`createApp`), behind Hono's
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
import { Hono } from "hono/tiny";
import { handle, streamHandle, type APIGatewayProxyResult, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { AppError } from "../http/errors.js";
import { newRequestId } from "../http/handler.js";
import { problemResponse } from "../http/problem.js";
import { createLogger } from "../log.js";
import { getRuntime, type Runtime } from "../runtime.js";
import { createApp, type FetchApp } from "./app.js";
import { routes as defaultRoutes, type Route } from "./routes.js";

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
  // Defined by the Lambda Node.js runtime before it loads the handler module.
  // eslint-disable-next-line no-var
  var awslambda: AwsLambdaGlobal | undefined;
}

/** A runtime, or how to get one on first request (the default reads the environment). */
export type RuntimeSource = Runtime | (() => Runtime);

type LambdaBindings = { event?: LambdaEvent; lambdaContext?: LambdaContext; context?: LambdaContext };

/** Responses that are text (JSON, problem+json, Server-Sent Events) travel as text, anything else base64. */
function isContentTypeBinary(contentType: string): boolean {
  return !/^text\/|[/+](json|xml)\s*(;|$)/i.test(contentType);
}

/**
 * An HTTP API (v2) stage other than `$default` prefixes rawPath with `/<stage>`; the route
 * table knows only the public paths, so strip it.
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

/** The Hono app both adapters wrap: every method and path goes to the route table. */
function lambdaApp(source: RuntimeSource, routes: readonly Route[]): Hono<{ Bindings: LambdaBindings }> {
  let app: FetchApp | undefined;
  const resolve = (): FetchApp => {
    // A configuration error is not cached: the next request tries again (and logs again).
    app ??= createApp(typeof source === "function" ? source() : source, routes);
    return app;
  };
  const hono = new Hono<{ Bindings: LambdaBindings }>();
  hono.all("*", (c) => {
    // Pooled database connections keep the event loop busy; answer without waiting for them.
    const lambdaContext = c.env?.lambdaContext ?? c.env?.context;
    if (lambdaContext) lambdaContext.callbackWaitsForEmptyEventLoop = false;
    return resolve().fetch(withoutStagePrefix(c.req.raw, c.env?.event));
  });
  hono.onError((error) => {
    // Reached when the runtime cannot be built (invalid configuration) or a module fails to load.
    const requestId = newRequestId();
    createLogger().error("lambda request failed before reaching an endpoint", {
      requestId,
      errorName: error instanceof Error ? error.name : typeof error,
      // ConfigError messages name variables and rules, never values.
      message: error instanceof Error ? error.message.slice(0, 500) : undefined,
    });
    const response = problemResponse(
      new AppError("server-misconfigured", {
        detail: `this deployment could not handle the request; quote request id ${requestId} to the operator`,
        action: "the operator must check the function's logs and configuration",
      }),
      requestId,
    );
    response.headers.set("x-request-id", requestId);
    return response;
  });
  return hono;
}

/**
 * A buffered Lambda handler over the route table with the given runtime (tests pass their
 * own; the exported `handler` uses the process default). `routes` is for tests.
 */
export function createLambdaHandler(source: RuntimeSource, routes: readonly Route[] = defaultRoutes): LambdaHandler {
  const inner = handle(lambdaApp(source, routes), { isContentTypeBinary });
  return (event, context) => inner(event, context) as Promise<APIGatewayProxyResult>;
}

/**
 * A response-streaming Lambda handler (Function URL, invoke mode RESPONSE_STREAM). Needs the
 * `awslambda` global the Lambda Node.js runtime defines; throws without it.
 */
export function createLambdaStreamingHandler(source: RuntimeSource, routes: readonly Route[] = defaultRoutes): LambdaStreamingHandler {
  if (typeof globalThis.awslambda?.streamifyResponse !== "function") {
    throw new Error("response streaming needs the awslambda global of the AWS Lambda Node.js runtime");
  }
  return streamHandle(lambdaApp(source, routes)) as unknown as LambdaStreamingHandler;
}

let defaultHandler: LambdaHandler | undefined;

/** Buffered entry point (`index.handler`): API Gateway, ALB or a BUFFERED Function URL. */
export const handler: LambdaHandler = (event, context) => {
  defaultHandler ??= createLambdaHandler(() => getRuntime());
  return defaultHandler(event, context);
};

/**
 * Streaming entry point (`index.streamingHandler`) for a RESPONSE_STREAM Function URL. Lambda
 * recognises a streaming handler by the mark `awslambda.streamifyResponse` puts on it, so it
 * is built when the module loads; outside Lambda (no `awslambda` global) it is undefined.
 */
export const streamingHandler: LambdaStreamingHandler | undefined =
  typeof globalThis.awslambda?.streamifyResponse === "function" ? createLambdaStreamingHandler(() => getRuntime()) : undefined;
