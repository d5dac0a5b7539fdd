/** /docs: Swagger UI (swagger-ui-dist, self-hosted) over the generated OpenAPI document. */
declare const SwaggerUIBundle: (options: Record<string, unknown>) => unknown;

SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true, tryItOutEnabled: false });
